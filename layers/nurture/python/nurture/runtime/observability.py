"""Logger, Tracer and Metrics for every handler, configured in one place, and the one list of metric names.

Logs carry lead ids and stages, never email addresses or names.
"""

from __future__ import annotations

from enum import StrEnum

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from nurture.constants import METRICS_NAMESPACE, SERVICE_NAME

logger = Logger(service=SERVICE_NAME)
tracer = Tracer(service=SERVICE_NAME)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME)


class Metric(StrEnum):
    """Every metric the engine emits (EMF, namespace `Nurture`, counts). docs/architecture.md explains each;
    dashboards and alarms name them from here."""

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
    """Add `value` to a count metric of this invocation."""
    metrics.add_metric(name=metric, unit=MetricUnit.Count, value=value)


def seconds(metric: Metric, value: float) -> None:
    """Record a duration measured by this invocation (a gauge: dashboards and alarms read its maximum)."""
    metrics.add_metric(name=metric, unit=MetricUnit.Seconds, value=value)
