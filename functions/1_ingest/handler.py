"""API Gateway HTTP API -> the v1 routes: Segment-compatible ingestion and the admin lead routes."""

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from nurture.api.resolver import app
from nurture.runtime.observability import logger, metrics, tracer
from nurture.runtime.settings import settings

settings()  # a missing or invalid setting fails the cold start, naming its environment variable


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app().resolve(event, context)
