"""Logger, Tracer and Metrics for every handler, configured in one place, and the one list of metric names.

Logs carry lead ids and stages, never email addresses or names.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from nurture.constants import METRICS_NAMESPACE, SERVICE_NAME

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

Handler = TypeVar("Handler", bound=Callable[..., Any])


class LazyTracer:
    """powertools' Tracer, built at the first invocation instead of at import, and patching botocore only.

    Building a `Tracer` imports the X-Ray SDK, which imports botocore's session and client machinery and (with
    the default `patch_all`) requests, sqlite3 and httplib to patch them: about as much as a bare `import boto3`,
    paid by every cold start before the handler's first line. Here the handler is wrapped on its first call,
    when its clients are about to import botocore anyway, and only botocore is patched (the AWS calls are what
    the traces are for). Where powertools would not trace (`POWERTOOLS_TRACE_DISABLED`, outside Lambda, SAM
    local), the X-Ray SDK is never imported and the handler runs as it is. Active tracing on the function
    still records each invocation's segment (init, invocation, overhead) without the SDK.
    """

    PATCH_MODULES = ("botocore",)

    def __init__(self, service: str) -> None:
        self._service = service
        self._tracer: Tracer | None = None
        self._lock = threading.Lock()

    @staticmethod
    def enabled() -> bool:
        from aws_lambda_powertools.tracing.tracer import Tracer

        return not Tracer._is_tracer_disabled()

    def tracer(self) -> Tracer:
        """The powertools Tracer, built (and botocore patched) on first use."""
        with self._lock:
            if self._tracer is None:
                from aws_lambda_powertools import Tracer

                self._tracer = Tracer(service=self._service, patch_modules=self.PATCH_MODULES)
            return self._tracer

    def capture_lambda_handler(self, handler: Handler) -> Handler:
        """powertools' `capture_lambda_handler`, applied at the first invocation (or not at all, untraced)."""
        traced: list[Callable[..., Any]] = []

        @functools.wraps(handler)
        def wrapper(event: Any, context: Any) -> Any:
            if not traced:
                traced.append(self.tracer().capture_lambda_handler(handler) if self.enabled() else handler)
            return traced[0](event, context)

        return wrapper  # type: ignore[return-value]


logger = Logger(service=SERVICE_NAME)
tracer = LazyTracer(service=SERVICE_NAME)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME)


class Metric(StrEnum):
    """Every metric the engine emits (EMF, namespace `Nurture`, counts, each only when non-zero).
    docs/architecture.md explains each; dashboards and alarms name them from here."""

    MESSAGES_ACCEPTED = "MessagesAccepted"
    MESSAGES_REJECTED = "MessagesRejected"
    DUPLICATE_MESSAGES = "DuplicateMessages"
    STAGE_TRANSITIONS = "StageTransitions"
    # Transitions by the stage entered (a dashboard line per stage)
    ENTERED_AWARENESS = "EnteredAwareness"
    ENTERED_CONSIDERATION = "EnteredConsideration"
    ENTERED_DECISION = "EnteredDecision"
    ENTERED_RE_ENGAGEMENT = "EnteredReEngagement"
    ENTERED_SALES_ENGAGED = "EnteredSalesEngaged"
    ENTERED_OPTED_OUT = "EnteredOptedOut"
    ENTERED_SUPPRESSED = "EnteredSuppressed"
    ENTERED_EXCLUDED = "EnteredExcluded"
    SENDS_QUEUED = "SendsQueued"
    SALES_ALERTS = "SalesAlerts"
    SALES_ALERTS_DELIVERED = "SalesAlertsDelivered"
    OWNERS_ASSIGNED = "OwnersAssigned"
    LEADS_DUE = "LeadsDue"
    DISPATCH_FAILURES = "DispatchFailures"
    EMAILS_SENT = "EmailsSent"
    SENDS_UNCONFIRMED = "SendsUnconfirmed"
    SEND_RECORDS_LOST = "SendRecordsLost"
    SENDS_SKIPPED = "SendsSkipped"
    BROKEN_EMAILS = "BrokenEmails"
    DUPLICATE_SENDS_BLOCKED = "DuplicateSendsBlocked"
    LEAD_WRITE_CONFLICTS = "LeadWriteConflicts"
    LEADS_MERGED = "LeadsMerged"
    CONTENT_REJECTED = "ContentRejected"
    CONTENT_PUBLISHED = "ContentPublished"
    LEADS_WAITING_ON_CONTENT = "LeadsWaitingOnContent"
    EMAIL_EVENTS_RECORDED = "EmailEventsRecorded"
    AUTOMATED_EMAIL_EVENTS = "AutomatedEmailEvents"
    TRANSIENT_BOUNCES = "TransientBounces"
    EMAIL_EVENTS_UNMATCHED = "EmailEventsUnmatched"
    # A gauge, not a count (`seconds`): how long the longest-waiting due lead has waited, after each tick.
    OLDEST_DUE_SECONDS = "OldestDueSeconds"


def count(metric: Metric, value: int = 1) -> None:
    """Add `value` to a count metric of this invocation; a zero is not emitted.

    CloudWatch bills a custom metric for each hour in which it is emitted, zeros included: a count that is zero
    this invocation (no due leads this tick, no rejected message in this request) stays out of the EMF blob, so
    a count's metric exists only in the hours something happened. Dashboards show the gap as nothing happening;
    alarms on counts treat missing data as not breaching. Gauges (`seconds`) are always emitted."""
    if value:
        metrics.add_metric(name=metric, unit=MetricUnit.Count, value=value)


def seconds(metric: Metric, value: float) -> None:
    """Record a duration measured by this invocation (a gauge: dashboards and alarms read its maximum)."""
    metrics.add_metric(name=metric, unit=MetricUnit.Seconds, value=value)
