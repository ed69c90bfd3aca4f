"""Logger, Tracer and Metrics for every handler, configured in one place.

Logs carry lead ids and stages, never email addresses or names.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

from nurture.constants import METRICS_NAMESPACE, SERVICE_NAME

logger = Logger(service=SERVICE_NAME)
tracer = Tracer(service=SERVICE_NAME)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME)
