"""What the engine costs on AWS a month, beside HubSpot Marketing Hub Professional, from measured requests.

Reads the AWS requests per unit of work that `tests/bench/pipeline.py` measured through the real handlers
(docs/bench/requests.json), measures the three units that file does not cover (an SES feedback event through the
email-events Lambda, a sales alert through the alerts Lambda, a content upload through the content check) on the
local stack with the same counting harness, multiplies by the activity of 1,000, 10,000 and 1,000,000 leads a month
and by AWS list prices (us-east-1), and writes docs/cost.md. The fixed monthly costs (secrets, keys, alarms, the
dashboard, the dispatcher's schedule, Lambda's idle queue polling) are shown apart from the costs that grow with
leads; custom metrics are billed by the hours each is emitted in (`METRIC_EMISSION` classifies every metric).
The goal (issue 12): at most 1% of HubSpot's list price for the same number of contacts.

The arithmetic is `monthly_cost`: prices, activity and measured units in, priced lines out, no files.

Run: python -m tests.bench.cost [--requests PATH] [--derived]
  --requests  the measured units (default docs/bench/requests.json, written by `python -m tests.bench.pipeline`)
  --derived   skip the local-stack measurement of the three extra units and use the figures derived from the code
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import math
import platform
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
REQUESTS = ROOT / "docs" / "bench" / "requests.json"
COST_MD = ROOT / "docs" / "cost.md"
TEMPLATE = ROOT / "cdk.out" / "NurtureStack.template.json"
SIZES = (1_000, 10_000, 1_000_000)
GOAL = 0.01  # the engine's AWS bill at most 1% of HubSpot's list price
SECONDS_A_MONTH = 30 * 24 * 3600  # a 30-day month, as AWS's pricing examples use
HOURS_A_MONTH = 30 * 24  # CloudWatch prorates a custom metric by the hours it is emitted in: a metric-month is 720
# The metrics operators watch (tests/infra/test_monitoring.py, "what operators watch"): docs/cost.md's lever of
# emitting only these as CloudWatch metrics and logging the rest as plain fields.
LEAN_METRICS = (
    "MessagesAccepted",
    "MessagesRejected",
    "StageTransitions",
    "EmailsSent",
    "SalesAlerts",
    "AutomatedEmailEvents",
    "TransientBounces",
    "BrokenEmails",
    "ContentRejected",
    "OldestDueSeconds",
)
CHECKED = "2026-11-23"  # the day the prices below were looked up (stored copies of the pages named)

# --- prices ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Price:
    value: float
    unit: str
    source: str
    checked: bool  # False: the best-known list price, not re-checked here (search found no copy stating it)


AWS_CW = "https://aws.amazon.com/cloudwatch/pricing/"
HUBSPOT_SOURCE = (
    "https://www.hubspot.com/pricing/marketing (as read on 2026-08-13 by "
    "github.com/api-evangelist/hubspot plans/hubspot-plans-pricing.yml)"
)
PRICES: dict[str, Price] = {
    # Lambda, arm64, us-east-1 (first 7.5 billion GB-s a month)
    "lambda_request": Price(0.20 / 1e6, "request", "https://cloudchipr.com/blog/aws-lambda-pricing", True),
    "lambda_gb_s_arm": Price(0.0000133334, "GB-second", "https://cloudchipr.com/blog/aws-lambda-pricing", True),
    "snapstart_cache_gb_s": Price(
        0.0000015046, "GB-second cached", "https://awsnegotiations.com/blog/lambda-snapstart-cost-impact/", True
    ),
    "snapstart_restore_gb": Price(
        0.0001397998, "GB restored", "https://awsnegotiations.com/blog/lambda-snapstart-cost-impact/", True
    ),
    # API Gateway HTTP API (first 300 million a month; metered in 512 KB increments)
    "http_api_request": Price(
        1.00 / 1e6, "request", "https://awsforengineers.com/blog/aws-api-gateway-pricing-explained", True
    ),
    # DynamoDB on demand, after the 50% cut of 1 November 2024
    "ddb_wru": Price(
        0.625 / 1e6, "write request unit", "https://airbyte.com/data-engineering-resources/dynamodb-pricing", True
    ),
    "ddb_rru": Price(
        0.125 / 1e6, "read request unit", "https://airbyte.com/data-engineering-resources/dynamodb-pricing", True
    ),
    "ddb_storage_gb": Price(
        0.25, "GB-month (after the first 25 GB)", "https://aws.amazon.com/dynamodb/pricing/on-demand/", False
    ),
    "ddb_pitr_gb": Price(
        0.20,
        "GB-month of table size (point-in-time recovery)",
        "https://aws.amazon.com/dynamodb/pricing/on-demand/",
        False,
    ),
    "ses_email": Price(
        0.10 / 1000,
        "email sent",
        "https://dev.to/aurora75/centralizing-email-infrastructure-on-aws-with-sesmailengine-2i0d",
        True,
    ),
    "sqs_request": Price(
        0.40 / 1e6,
        "request (64 KB chunk)",
        "https://adhdecode-articles-4.pages.dev/articles/sqs/sqs-cost-per-million-messages-pricing",
        True,
    ),
    "eventbridge_custom_event": Price(
        1.00 / 1e6, "custom event (64 KB chunk)", "https://aws.amazon.com/eventbridge/pricing/", False
    ),
    "sns_publish": Price(0.50 / 1e6, "publish", "https://aws.amazon.com/sns/pricing/", False),
    "s3_get": Price(0.0004 / 1000, "GET request", "https://aws.amazon.com/s3/pricing/", False),
    "cloudfront_request": Price(0.0100 / 10_000, "HTTPS request", "https://aws.amazon.com/cloudfront/pricing/", False),
    "cloudfront_gb": Price(
        0.085, "GB out (first 10 TB, North America)", "https://aws.amazon.com/cloudfront/pricing/", False
    ),
    "logs_ingest_gb": Price(
        0.50,
        "GB ingested",
        "https://www.factualminds.com/blog/amazon-cloudwatch-pricing-metrics-logs-alarms-dashboards/",
        True,
    ),
    "logs_store_gb": Price(0.03, "GB-month archived (compressed)", AWS_CW, False),
    "custom_metric": Price(0.30, "metric-month (first 10,000)", "https://signoz.io/guides/cloudwatch-pricing", True),
    "alarm_metric": Price(0.10, "standard-resolution alarm metric-month", AWS_CW, False),
    "dashboard": Price(
        3.00,
        "dashboard-month",
        "https://www.factualminds.com/blog/amazon-cloudwatch-pricing-metrics-logs-alarms-dashboards/",
        True,
    ),
    "xray_trace": Price(5.00 / 1e6, "trace recorded", "https://aws.amazon.com/xray/pricing/", True),
    "secret": Price(
        0.40,
        "secret-month",
        "https://hivebook.wiki/wiki/aws-secrets-manager-rotated-secrets-dynamic-db-credentials-kms",
        True,
    ),
    "secret_call": Price(
        0.05 / 10_000,
        "API call",
        "https://hivebook.wiki/wiki/aws-secrets-manager-rotated-secrets-dynamic-db-credentials-kms",
        True,
    ),
    "kms_key": Price(
        1.00,
        "customer-managed key-month",
        "https://www.factualminds.com/blog/aws-kms-pricing-keys-requests-multi-region/",
        True,
    ),
    "kms_request": Price(
        0.03 / 10_000, "request", "https://www.factualminds.com/blog/aws-kms-pricing-keys-requests-multi-region/", True
    ),
    # HubSpot Marketing Hub Professional, US list price, monthly billing (annual commitment: $800)
    "hubspot_pro_base": Price(
        890.0,
        "month, 3 core seats and 2,000 marketing contacts",
        HUBSPOT_SOURCE,
        True,
    ),
    "hubspot_pro_block": Price(
        250.0,
        "month per 5,000 further marketing contacts",
        "https://legal.hubspot.com/hubspot-product-and-services-catalog",
        False,
    ),
}
HUBSPOT_INCLUDED = 2_000
HUBSPOT_BLOCK = 5_000


def rates(prices: Mapping[str, Price] = PRICES) -> dict[str, float]:
    return {name: price.value for name, price in prices.items()}


# --- what is measured -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Unit:
    """AWS requests per unit of work ("dynamodb PutItem": 1.0, ...), the handler's own time per unit (AWS calls
    excluded) and the AWS calls per unit; `source` says whether it was measured or derived from the code."""

    per: str
    requests: Mapping[str, float]
    handler_ms: float
    aws_calls: float
    count: int = 0
    source: str = "measured"


def load_units(path: Path) -> tuple[dict[str, Unit], dict[str, Any]]:
    data = json.loads(path.read_text())
    units = {
        name: Unit(
            per=u["per"],
            requests=dict(u["requests"]),
            handler_ms=float(u["handler_ms"]),
            aws_calls=float(u["aws_calls"]),
            count=int(u.get("count", 0)),
        )
        for name, u in data["units"].items()
    }
    return units, {"measured": data.get("measured", "?"), "machine": data.get("machine", "?")}


# Read from functions/6_email_events, 7_alerts and 5_content_check and the pipeline modules they call, for when the
# local-stack measurement is skipped (--derived). `python -m tests.bench.cost` measures them instead.
DERIVED_UNITS: dict[str, Unit] = {
    # the email's mail log (Query), the lead's profile link (GetItem), the record stored on the events table
    # (PutItem), the mail log entry (PutItem)
    "email_event": Unit(
        "SES feedback event",
        {"dynamodb Query": 1, "dynamodb GetItem": 1, "dynamodb PutItem": 2},
        3.0,
        4,
        source="derived, not measured",
    ),
    # idempotency record (PutItem + UpdateItem), owner (GetItem + UpdateItem), SNS, Lead Qualified on the bus
    "alert": Unit(
        "sales alert",
        {
            "dynamodb PutItem": 2,
            "dynamodb UpdateItem": 2,
            "dynamodb GetItem": 1,
            "sns Publish": 1,
            "events PutEvents": 1,
            "secretsmanager GetSecretValue": 1,
        },
        5.0,
        8,
        source="derived, not measured",
    ),
    "content_upload": Unit(
        "content upload", {"s3 GetObject": 3, "s3 PutObject": 1}, 50.0, 4, source="derived, not measured"
    ),
}
# A feedback event the email-events Lambda stores becomes a message on the events table, so a stream record for the
# scorer. Derived: every delivery, open and click is stored (scanner opens too, flagged).
DERIVED_RECORDS_PER_FEEDBACK = 1.0


# --- the stack, as synthesized -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stack:
    """What the deployed stack holds that costs money every month whatever the traffic, and each function's memory."""

    memory_mb: Mapping[str, int]
    secrets: int = 4
    kms_keys: int = 1
    alarm_metrics: int = 20
    dashboards: int = 1
    # the custom metrics the handlers emit (every `Metric`, one dimension each: one CloudWatch metric each)
    metrics: tuple[str, ...] = field(default_factory=lambda: tuple(METRIC_EMISSION))
    sqs_triggers: int = 3  # queues a Lambda event source mapping long-polls
    snapstart_functions: tuple[str, ...] = ()
    source: str = "defaults in tests/bench/cost.py"

    @property
    def custom_metrics(self) -> int:
        return len(self.metrics)


FUNCTIONS = {  # logical-id prefix in the template -> the function's name in nurture.constants.FUNCTION_DIRS
    "IngestHandlerFunction": "ingest",
    "ScoringHandlerFunction": "scorer",
    "DispatchDispatcherFunction": "dispatcher",
    "DispatchSenderFunction": "sender",
    "ContentCheckHandlerFunction": "content_check",
    "EmailEventsHandlerFunction": "email_events",
    "AlertsHandlerFunction": "alerts",
    "MonitoringSendGuardHandlerFunction": "send_guard",
}


def stack_from_template(template: dict[str, Any], metrics: Sequence[str], source: str) -> Stack:
    """Count the fixed-cost resources in a synthesized template (`make synth` writes cdk.out/)."""
    resources = template["Resources"]

    def of(kind: str) -> list[dict[str, Any]]:
        return [r for r in resources.values() if r["Type"] == kind]

    memory: dict[str, int] = {}
    snapstart: list[str] = []
    for logical, resource in resources.items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        name = next((n for prefix, n in FUNCTIONS.items() if logical.startswith(prefix)), None)
        if name is None:
            continue  # the CDK's own deployment helper: runs at deploy time only
        memory[name] = int(resource["Properties"].get("MemorySize", 128))
        if resource["Properties"].get("SnapStart", {}).get("ApplyOn") == "PublishedVersions":
            snapstart.append(name)
    alarm_metrics = sum(
        max(1, sum(1 for m in a["Properties"].get("Metrics", []) if "MetricStat" in m))
        for a in of("AWS::CloudWatch::Alarm")
    )

    def source_type(mapping: dict[str, Any]) -> str:
        arn = mapping["Properties"].get("EventSourceArn", {})
        target = arn.get("Fn::GetAtt", [""])[0] if isinstance(arn, dict) else ""
        return str(resources.get(target, {}).get("Type", ""))

    sqs_arns = [m for m in of("AWS::Lambda::EventSourceMapping") if source_type(m) == "AWS::SQS::Queue"]
    return Stack(
        memory_mb=memory,
        secrets=len(of("AWS::SecretsManager::Secret")),
        kms_keys=len(of("AWS::KMS::Key")),
        alarm_metrics=alarm_metrics,
        dashboards=len(of("AWS::CloudWatch::Dashboard")),
        metrics=tuple(metrics),
        sqs_triggers=len(sqs_arns),
        snapstart_functions=tuple(snapstart),
        source=source,
    )


def current_stack() -> Stack:
    from nurture.runtime.observability import Metric

    metrics = tuple(m.value for m in Metric)  # each emitted with the one dimension `service`
    if TEMPLATE.exists():
        stamp = datetime.fromtimestamp(TEMPLATE.stat().st_mtime, UTC)
        source = f"counted in cdk.out/NurtureStack.template.json (synthesized {stamp:%Y-%m-%d %H:%M} UTC)"
        return stack_from_template(json.loads(TEMPLATE.read_text()), metrics, source)
    from infra.constructs.runtime import MEMORY_MB

    return Stack(memory_mb=dict.fromkeys(FUNCTIONS.values(), MEMORY_MB), metrics=metrics)


# --- activity ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Activity:
    """What each lead does in a month, and the assumptions that turn requests into bills. Every figure is stated in
    docs/cost.md; change them here."""

    messages_per_lead: float = 10.0  # page views and tracked events through the API (8 page views + 2 others)
    page_views_per_lead: float = 8.0  # of those, page views: each loads the snippet from CloudFront at most once
    api_requests_per_message: float = 1.0  # the browser snippet posts each message on its own (no /v1/batch)
    emails_per_lead: float = 2.0  # tests/bench/simulate.py: 104,741 emails to 10,000 buyers in 180 days = 1.75
    feedback_per_email: float = 1.45  # SES records: delivery 1.0 + open 0.4 + click 0.05
    alerts_per_lead: float = 0.05  # sales handoffs: simulate.py's 2,791 for 10,000 buyers in 6 months = 0.047
    content_uploads: float = 20.0  # content files marketers upload a month (fixed)
    # turning requests into request units (state every one: docs/cost.md)
    batch_get_keys: float = 1.5  # keys per BatchGetItem (profile links of a stream batch's messages)
    transact_items: float = 2.0  # items per TransactWriteItems (the lead and one new profile link), 2 WRU each
    query_rru: float = 0.5  # a Query of a keys-only index: one page under 4 KB, eventually consistent
    gsi_wru: Mapping[str, float] = field(
        default_factory=lambda: {"dispatcher_lead": 2.0, "scorer": 0.5, "sender": 0.0}
    )  # due-index writes per unit: moving a lead's due time deletes and re-puts its index entry (2 WRU)
    put_events_entries: float = 1.18  # events per PutEvents call (pipeline bench: scorer 1.18)
    # Lambda duration
    aws_call_ms: float = 8.0  # in-region latency of one AWS call, billed while the handler waits
    invocation_ms: float = 3.0  # per invocation: powertools' decorators, the EMF flush, rounding up to 1 ms
    init_s: float = 1.0  # a cold start's INIT, billed since August 2025 (imports bench: 0.5-0.7 s on x86 here)
    cold_starts_cap: float = 30 * 24 * 6  # per function a month: one each 10 minutes of the month at most
    snapstart_restore_gb: float = 0.5  # per cold start of a SnapStart function
    # batching by the event sources
    stream_polls_per_second: float = 4.0  # Lambda polls each stream shard about 4 times a second
    email_events_window_s: float = 5.0  # the email-events queue's MaximumBatchingWindow
    sqs_idle_requests: float = 5 * 3 * 60 * 24 * 30  # per queue a month: 5 long pollers, 20 s waits, all month
    dispatcher_runs: float = 30 * 24 * 12  # rate(5 minutes)
    # storage
    lead_bytes: float = 2_000.0  # per lead on the leads table: the 800-byte lead item, profile links, send records
    event_bytes: float = 700.0  # per message on the events table
    events_retention_months: float = 400 / 30  # EVENTS_RETENTION_DAYS: the events table at steady state
    # logs
    log_bytes_per_invocation: float = 1_000.0  # START/END/REPORT lines and the EMF metrics blob
    access_log_bytes: float = 350.0  # one API Gateway access log line (ACCESS_LOG_FORMAT) per request
    logs_compression: float = 0.15  # archived size over ingested size
    snippet_kb: float = 6.0  # the snippet as CloudFront sends it (compressed)
    # custom metrics: a count is emitted only in the hours something happened (observability.count skips zeros)
    transitions_per_lead: Mapping[str, float] = field(
        default_factory=lambda: {
            "EnteredAwareness": 0.093,
            "EnteredConsideration": 0.065,
            "EnteredDecision": 0.045,
            "EnteredReEngagement": 0.046,
            "EnteredSalesEngaged": 0.0092,
            "EnteredOptedOut": 0.0048,
            "EnteredSuppressed": 0.042,
            "EnteredExcluded": 0.0033,
        }
    )  # stage changes a lead-month by the stage entered: tests/bench/replay.py's simulated year (3,683 for 1,000)
    merges_per_lead: float = 0.05  # a known person's lead absorbing another (identified on a new device)
    exhausted_per_lead: float = 0.1  # a lead starting to wait on content (its sequence of 3 to 7 emails ran out)
    scanner_events_per_email: float = 0.1  # opens and clicks flagged as a link scanner's, seconds after delivery
    send_window_hours: float = 30 / 7 * 5 * 8  # content/programme.yaml: weekdays 09:00-17:00, one time zone
    fault_hours: float = 10.0  # hours a month each fault count is emitted in (it is emitted only when non-zero)


# --- custom metrics: billed by the hours they are emitted in ------------------------------------------------------


@dataclass(frozen=True)
class Volumes:
    """The month's work, for the metrics that count it: events a month at the size modelled."""

    leads: float
    messages: float  # messages accepted
    requests: float  # ingest requests (each emits MessagesAccepted once)
    emails: float
    feedback: float  # SES records
    alerts: float
    ticked: float  # leads the dispatcher ticks


TICK = "tick"
ACTIVITY = "activity"
EMAILS = "emails"
FAULTS = "faults"
EMISSION_CLASSES = {
    TICK: "a gauge emitted every dispatcher tick: every hour",
    ACTIVITY: "counts emitted with messages, stage changes, alerts or uploads: any hour with one",
    EMAILS: "counts emitted with emails: the send-window hours with one (and, for some, any hour)",
    FAULTS: "fault counts, emitted only when non-zero: an assumed few hours a month",
}
Events = Callable[[Volumes, Activity], float]


def _none(v: Volumes, a: Activity) -> float:
    return 0.0


@dataclass(frozen=True)
class Emission:
    """When a metric is emitted: its class, and for counts the events a month that emit it inside the send window
    (`window`) and at any hour (`anytime`); `fixed` when those events do not grow with leads."""

    kind: str
    events: str  # what one event is, for docs/cost.md
    window: Events = _none
    anytime: Events = _none
    fixed: bool = False


def _stage(name: str) -> Emission:
    return Emission(ACTIVITY, "a lead entering that stage", anytime=lambda v, a: v.leads * a.transitions_per_lead[name])


def _timers(v: Volumes, a: Activity) -> float:
    """Leads the dispatcher finds due for a timer rather than a send (a timeout, a return, a suppression): any hour."""
    return v.leads * (a.transitions_per_lead["EnteredReEngagement"] + a.transitions_per_lead["EnteredSuppressed"])


_FAULT = Emission(FAULTS, "a fault (emitted only when non-zero)", fixed=True)
# Every `Metric` (nurture.runtime.observability) by when it is emitted. tests/unit/test_cost_model.py fails if a
# metric is added to the enum without a class here.
METRIC_EMISSION: dict[str, Emission] = {
    "OldestDueSeconds": Emission(TICK, "a dispatcher tick (the dispatcher-lag alarm's gauge)", fixed=True),
    "MessagesAccepted": Emission(
        ACTIVITY, "an ingest request with a message accepted", anytime=lambda v, a: v.requests
    ),
    "StageTransitions": Emission(
        ACTIVITY, "a stage change", anytime=lambda v, a: v.leads * sum(a.transitions_per_lead.values())
    ),
    **{
        name: _stage(name)
        for name in (
            "EnteredAwareness",
            "EnteredConsideration",
            "EnteredDecision",
            "EnteredReEngagement",
            "EnteredSalesEngaged",
            "EnteredOptedOut",
            "EnteredSuppressed",
            "EnteredExcluded",
        )
    },
    "SalesAlerts": Emission(ACTIVITY, "a sales alert", anytime=lambda v, a: v.alerts),
    "SalesAlertsDelivered": Emission(ACTIVITY, "a sales alert", anytime=lambda v, a: v.alerts),
    "OwnersAssigned": Emission(ACTIVITY, "a sales alert (at most one owner each)", anytime=lambda v, a: v.alerts),
    "LeadsMerged": Emission(ACTIVITY, "a merge", anytime=lambda v, a: v.leads * a.merges_per_lead),
    "ContentPublished": Emission(ACTIVITY, "a content upload", anytime=lambda v, a: a.content_uploads, fixed=True),
    "SendsQueued": Emission(EMAILS, "an email queued", window=lambda v, a: v.emails),
    "EmailsSent": Emission(EMAILS, "an email sent", window=lambda v, a: v.emails),
    "LeadsDue": Emission(
        EMAILS,
        "a lead ticked: for a send in the window, for a timer any hour",
        window=lambda v, a: v.ticked,
        anytime=_timers,
    ),
    "LeadsWaitingOnContent": Emission(
        EMAILS, "a lead's sequence running out", window=lambda v, a: v.leads * a.exhausted_per_lead
    ),
    "EmailEventsRecorded": Emission(
        EMAILS,
        "an SES record: the delivery in the window, opens and clicks any hour",
        window=lambda v, a: v.emails,
        anytime=lambda v, a: v.emails * max(0.0, a.feedback_per_email - 1.0),
    ),
    "AutomatedEmailEvents": Emission(
        EMAILS, "a scanner's open or click", window=lambda v, a: v.emails * a.scanner_events_per_email
    ),
    **dict.fromkeys(
        (
            "MessagesRejected",
            "DuplicateMessages",
            "DispatchFailures",
            "SendsUnconfirmed",
            "SendRecordsLost",
            "SendsSkipped",
            "BrokenEmails",
            "DuplicateSendsBlocked",
            "LeadWriteConflicts",
            "ContentRejected",
            "TransientBounces",
            "EmailEventsUnmatched",
        ),
        _FAULT,
    ),
}


def hours_with_events(window: float, anytime: float, window_hours: float, hours: float = HOURS_A_MONTH) -> float:
    """Expected hours of the month with at least one event: `window` events a month spread at random over the
    send window's hours, `anytime` events over every hour (Poisson arrivals; traffic bunched into busy hours
    touches fewer hours, so this leans high)."""
    window_hours = min(window_hours, hours)
    inside = window_hours * (1 - math.exp(-(window / window_hours if window_hours else 0.0) - anytime / hours))
    outside = (hours - window_hours) * (1 - math.exp(-anytime / hours))
    return inside + outside


def metric_hours(name: str, volumes: Volumes, activity: Activity) -> float:
    """The hours of the month metric `name` is emitted in (what CloudWatch bills, prorated)."""
    try:
        emission = METRIC_EMISSION[name]
    except KeyError:
        raise KeyError(f"metric {name!r} has no emission class: classify it in tests/bench/cost.py") from None
    if emission.kind == TICK:
        return float(HOURS_A_MONTH) if activity.dispatcher_runs >= HOURS_A_MONTH else activity.dispatcher_runs
    if emission.kind == FAULTS:
        return min(activity.fault_hours, HOURS_A_MONTH)
    return hours_with_events(
        emission.window(volumes, activity), emission.anytime(volumes, activity), activity.send_window_hours
    )


# --- the arithmetic ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    service: str
    item: str
    quantity: float
    unit: str
    dollars: float
    fixed: bool


def request_units(op: str, activity: Activity) -> tuple[float, float]:
    """(read units, write units) one DynamoDB request of `op` costs."""
    if op == "GetItem":
        return 1.0, 0.0  # strongly consistent, item under 4 KB
    if op == "Query":
        return activity.query_rru, 0.0
    if op == "BatchGetItem":
        return activity.batch_get_keys, 0.0
    if op in ("PutItem", "UpdateItem", "DeleteItem"):
        return 0.0, 1.0  # items under 1 KB (the mean lead item is 800 bytes)
    if op == "BatchWriteItem":
        return 0.0, 1.0
    if op == "TransactWriteItems":
        return 0.0, 2.0 * activity.transact_items
    raise KeyError(f"no request units known for DynamoDB {op}")


def fill(per_month: float, per_second_window: float, batch: float) -> float:
    """Records per invocation of a batching event source: what arrives in one polling window, 1 to `batch`."""
    return min(batch, max(1.0, per_month / SECONDS_A_MONTH * per_second_window))


def traces(invocations: float) -> float:
    """X-Ray traces under the default sampling rule: the first request each second (the seconds with at least one
    arrival, arrivals spread evenly), then 5% of the rest."""
    if invocations <= 0:
        return 0.0
    rate = invocations / SECONDS_A_MONTH
    reservoir = SECONDS_A_MONTH * (1 - math.exp(-rate))
    return reservoir + 0.05 * max(0.0, invocations - reservoir)


def volumes(leads: float, activity: Activity, units: Mapping[str, Unit]) -> Volumes:
    """The month's work at `leads` leads: what the metrics count."""
    a, u = activity, units
    messages, emails = leads * a.messages_per_lead, leads * a.emails_per_lead
    ticks_per_email = u["dispatcher_lead"].count / u["sender"].count if u["sender"].count else 1.0
    return Volumes(
        leads=leads,
        messages=messages,
        requests=messages * a.api_requests_per_message,
        emails=emails,
        feedback=emails * a.feedback_per_email,
        alerts=leads * a.alerts_per_lead,
        ticked=emails * ticks_per_email,
    )


def monthly_cost(
    leads: float,
    prices: Mapping[str, float],
    activity: Activity,
    units: Mapping[str, Unit],
    stack: Stack,
    records_per_feedback: float = DERIVED_RECORDS_PER_FEEDBACK,
) -> list[Line]:
    """The month's AWS bill for `leads` leads, one priced line each; fixed lines are what a month costs at no leads.

    `units` are requests per unit of work: ingest (per message), scorer (per stream record), dispatcher_lead (per
    lead ticked), dispatcher_invocation (per run), sender (per email), email_event (per SES record), alert (per
    sales alert), content_upload (per upload). A request no price is known for raises KeyError: nothing is dropped.
    """
    a, p, u = activity, prices, units
    lines: list[Line] = []

    def add(service: str, item: str, quantity: float, unit: str, price: str, fixed: bool = False) -> None:
        lines.append(Line(service, item, quantity, unit, quantity * p[price], fixed))

    # How much of each unit of work a month
    messages = leads * a.messages_per_lead
    emails = leads * a.emails_per_lead
    feedback = emails * a.feedback_per_email
    alerts = leads * a.alerts_per_lead
    ticks_per_email = u["dispatcher_lead"].count / u["sender"].count if u["sender"].count else 1.0
    ticked = emails * ticks_per_email
    records = messages + feedback * records_per_feedback
    variable_work = {
        "ingest": messages,
        "scorer": records,
        "dispatcher_lead": ticked,
        "sender": emails,
        "email_event": feedback,
        "alert": alerts,
    }
    fixed_work = {"dispatcher_invocation": a.dispatcher_runs, "content_upload": a.content_uploads}

    # Lambda invocations, by function
    sqs_batches_per_lead = u["dispatcher_lead"].requests.get("sqs SendMessageBatch", 0.0)
    sender_fill = min(10.0, 1.0 / sqs_batches_per_lead) if sqs_batches_per_lead else 1.0
    invocations = {
        "ingest": messages * a.api_requests_per_message,
        "scorer": records / fill(records, 1 / a.stream_polls_per_second, 100),
        "sender": emails / sender_fill,
        "email_events": feedback / fill(feedback, a.email_events_window_s, 10),
        "alerts": alerts,
    }
    fixed_invocations = {"dispatcher": a.dispatcher_runs, "content_check": a.content_uploads}
    function_of = {
        "ingest": "ingest",
        "scorer": "scorer",
        "dispatcher_lead": "dispatcher",
        "dispatcher_invocation": "dispatcher",
        "sender": "sender",
        "email_event": "email_events",
        "alert": "alerts",
        "content_upload": "content_check",
    }

    def memory_gb(function: str) -> float:
        return stack.memory_mb.get(function, 512) / 1024

    for fixed, work, calls in ((False, variable_work, invocations), (True, fixed_work, fixed_invocations)):
        label = "the dispatcher's schedule and content checks" if fixed else "per lead"
        n = sum(calls.values())
        add("Lambda", f"requests, {label}", n, "requests", "lambda_request", fixed)
        gb_s = sum(
            volume * (u[name].handler_ms + u[name].aws_calls * a.aws_call_ms) / 1000 * memory_gb(function_of[name])
            for name, volume in work.items()
        )
        gb_s += sum(count * a.invocation_ms / 1000 * memory_gb(fn) for fn, count in calls.items())
        add("Lambda", f"duration (arm64), {label}", gb_s, "GB-s", "lambda_gb_s_arm", fixed)
        cold = {fn: min(count, a.cold_starts_cap) for fn, count in calls.items()}
        init_gb_s = sum(n * a.init_s * memory_gb(fn) for fn, n in cold.items() if fn not in stack.snapstart_functions)
        add("Lambda", f"INIT of cold starts, {label}", init_gb_s, "GB-s", "lambda_gb_s_arm", fixed)
        restored = sum(n * a.snapstart_restore_gb for fn, n in cold.items() if fn in stack.snapstart_functions)
        if restored:
            add("Lambda", f"SnapStart restores, {label}", restored, "GB restored", "snapstart_restore_gb", fixed)
        add(
            "X-Ray",
            f"traces (active tracing, default sampling), {label}",
            sum(map(traces, calls.values())),
            "traces",
            "xray_trace",
            fixed,
        )
        log_gb = n * a.log_bytes_per_invocation / 1e9
        if not fixed:
            log_gb += invocations["ingest"] * a.access_log_bytes / 1e9
        add("CloudWatch", f"logs ingested, {label}", log_gb, "GB", "logs_ingest_gb", fixed)
        add(
            "CloudWatch",
            f"logs stored (30-day retention), {label}",
            log_gb * a.logs_compression,
            "GB-month",
            "logs_store_gb",
            fixed,
        )

        # Requests the handlers make, by service
        totals: dict[str, float] = {}
        for name, volume in work.items():
            for request, per in u[name].requests.items():
                totals[request] = totals.get(request, 0.0) + per * volume
        rru = wru = 0.0
        for request, n_requests in totals.items():
            service, op = request.split(" ", 1)
            if service == "dynamodb":
                r, w = request_units(op, a)
                rru, wru = rru + r * n_requests, wru + w * n_requests
        wru += sum(a.gsi_wru.get(name, 0.0) * volume for name, volume in work.items())
        add("DynamoDB", f"write request units, {label}", wru, "WRU", "ddb_wru", fixed)
        add("DynamoDB", f"read request units, {label}", rru, "RRU", "ddb_rru", fixed)
        events = sqs = s3 = secrets = sns = ses = 0.0
        for request, n_requests in totals.items():
            service, op = request.split(" ", 1)
            if service == "dynamodb":
                continue
            if request == "events PutEvents":
                events += n_requests * a.put_events_entries
            elif service == "sqs" and op in ("SendMessageBatch", "SendMessage", "DeleteMessage"):
                sqs += n_requests
            elif request == "sesv2 SendEmail":
                ses += n_requests
            elif service == "s3" and op in ("GetObject", "HeadObject", "PutObject", "ListObjectsV2"):
                s3 += n_requests * (12.5 if op in ("PutObject", "ListObjectsV2") else 1.0)  # PUT/LIST: 12.5x a GET
            elif request == "secretsmanager GetSecretValue":
                secrets += n_requests
            elif request == "sns Publish":
                sns += n_requests
            else:
                raise KeyError(f"no price known for {request!r}: price it in tests/bench/cost.py")
        if not fixed:
            # Lambda's pollers receive and delete a batch per invocation; EventBridge rules send each event alone
            sqs += 2 * (invocations["sender"] + invocations["email_events"] + invocations["alerts"])
            sqs += feedback + alerts
        add(
            "EventBridge",
            f"custom events put on the nurture bus, {label}",
            events,
            "events",
            "eventbridge_custom_event",
            fixed,
        )
        add("SQS", f"requests, {label}", sqs, "requests", "sqs_request", fixed)
        add("SES", f"emails sent, {label}", ses, "emails", "ses_email", fixed)
        add("S3", f"content reads (GET-equivalents), {label}", s3, "requests", "s3_get", fixed)
        add("Secrets Manager", f"GetSecretValue, {label}", secrets, "calls", "secret_call", fixed)
        add("KMS", f"decrypts of the secrets read, {label}", secrets, "requests", "kms_request", fixed)
        add("SNS", f"publishes (sales alerts), {label}", sns, "publishes", "sns_publish", fixed)

    # Per lead, outside the handlers
    add("API Gateway", "HTTP API requests (ingest)", invocations["ingest"], "requests", "http_api_request")
    add("CloudFront", "snippet requests", leads * a.page_views_per_lead, "requests", "cloudfront_request")
    add("CloudFront", "snippet bytes out", leads * a.page_views_per_lead * a.snippet_kb / 1e6, "GB", "cloudfront_gb")
    stored_gb = (leads * a.lead_bytes + (messages + feedback) * a.event_bytes * a.events_retention_months) / 1e9
    add("DynamoDB", "storage (leads table and 400 days of events)", stored_gb, "GB-month", "ddb_storage_gb")
    add("DynamoDB", "point-in-time recovery of that storage", stored_gb, "GB-month", "ddb_pitr_gb")

    # Fixed whatever the traffic
    add("Secrets Manager", "secrets", stack.secrets, "secret-months", "secret", True)
    add("KMS", "customer-managed keys (the alarms topic's)", stack.kms_keys, "key-months", "kms_key", True)
    add("CloudWatch", "alarms", stack.alarm_metrics, "alarm metric-months", "alarm_metric", True)
    add("CloudWatch", "dashboard", stack.dashboards, "dashboard-months", "dashboard", True)
    # Custom metrics (EMF): each billed for the hours it is emitted in, prorated, so a line per emission class
    work_done = volumes(leads, a, u)
    by_class: dict[tuple[str, bool], list[float]] = {}
    for name in stack.metrics:
        hours = metric_hours(name, work_done, a)  # KeyError for a metric with no class
        emission = METRIC_EMISSION[name]
        by_class.setdefault((emission.kind, emission.fixed), []).append(hours)
    for (kind, fixed_class), hours_each in by_class.items():
        item = f"custom metrics, {metric_class_label(kind, fixed_class, len(hours_each))}"
        hours = sum(hours_each)
        lines.append(
            Line("CloudWatch", item, hours, "metric-hours", hours / HOURS_A_MONTH * p["custom_metric"], fixed_class)
        )
    add(
        "SQS",
        "Lambda's long polling of idle queues",
        stack.sqs_triggers * a.sqs_idle_requests,
        "requests",
        "sqs_request",
        True,
    )
    for fn in stack.snapstart_functions:
        cached = memory_gb(fn) * SECONDS_A_MONTH
        add("Lambda", f"SnapStart snapshot cache ({fn})", cached, "GB-s", "snapstart_cache_gb_s", True)
    return lines


def metric_class_label(kind: str, fixed: bool, n: int) -> str:
    """A line's item for `n` metrics of one emission class."""
    what = {
        TICK: "a gauge every dispatcher tick, every hour",
        ACTIVITY: "counts with content uploads, any hour" if fixed else "counts with messages and stage changes",
        EMAILS: "counts with emails, in the send window",
        FAULTS: "fault counts, only when non-zero",
    }[kind]
    return f"{what} ({n} metric{'s' if n != 1 else ''})"


def hubspot_price(contacts: float, prices: Mapping[str, float]) -> float:
    """HubSpot Marketing Hub Professional a month for `contacts` marketing contacts, at list price."""
    blocks = math.ceil(max(0.0, contacts - HUBSPOT_INCLUDED) / HUBSPOT_BLOCK)
    return prices["hubspot_pro_base"] + blocks * prices["hubspot_pro_block"]


@dataclass(frozen=True)
class Size:
    leads: int
    lines: list[Line]
    hubspot: float

    @property
    def fixed(self) -> float:
        return sum(line.dollars for line in self.lines if line.fixed)

    @property
    def variable(self) -> float:
        return sum(line.dollars for line in self.lines if not line.fixed)

    @property
    def total(self) -> float:
        return self.fixed + self.variable

    @property
    def ratio(self) -> float:
        return self.total / self.hubspot

    @property
    def verdict(self) -> str:
        return "PASS" if self.ratio <= GOAL else "MISS"

    def by_service(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for line in self.lines:
            out[line.service] = out.get(line.service, 0.0) + line.dollars
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def sizes(
    prices: Mapping[str, float],
    activity: Activity,
    units: Mapping[str, Unit],
    stack: Stack,
    records_per_feedback: float,
    leads: Iterable[int] = SIZES,
) -> list[Size]:
    return [
        Size(n, monthly_cost(n, prices, activity, units, stack, records_per_feedback), hubspot_price(n, prices))
        for n in leads
    ]


# --- measuring the units pipeline.py leaves out -----------------------------------------------------------------


SES_SAMPLES = ROOT / "events" / "ses"
FEEDBACK_LEADS = 40
PERSON = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari"


def _feedback(mail: dict[str, Any], kind: str, after: timedelta, now: datetime) -> dict[str, Any]:
    """The events/ses sample `kind` about one email SES received, `after` it was sent (the e2e tests' recipe)."""
    record = copy.deepcopy(json.loads((SES_SAMPLES / f"{kind}.json").read_text()))
    sent = datetime.fromisoformat(str(mail["sent_at"]))
    at = min(sent + after, now)
    record["mail"] |= {"messageId": mail["message_id"], "timestamp": sent.isoformat(), "destination": [mail["to"]]}
    record["mail"]["tags"]["lead_id"] = [mail["lead_id"]]
    record["mail"]["tags"]["content_id"] = [mail["content_id"]]
    record[kind]["timestamp"] = at.isoformat()
    if kind == "click":
        record[kind]["userAgent"] = PERSON
    return record


@dataclass
class Measured:
    units: dict[str, Unit]
    records_per_feedback: float
    lead_bytes: float
    event_bytes: float
    notes: list[str]


def measure() -> Measured:
    """Run leads to their first emails on the local stack, then SES feedback on each email (delivery, open, click, as
    SES publishes them a little apart), then a content upload; count what the email-events, alerts and content-check
    Lambdas ask of AWS, with tests/bench/pipeline.py's harness. Also the mean item sizes the storage line needs."""
    from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS
    from aws_lambda_powertools.utilities.parameters.secrets import SecretsProvider

    from nurture import constants as c
    from nurture.runtime import clients as aws
    from nurture.runtime.observability import logger
    from nurture.tools.local.runtime import LocalStack
    from tests.bench.pipeline import ADVANCE, HANDLER_SERVICES, MONDAY, PUMP, WRITE_KEY, Calls, Work, ingest, requests
    from tests.bench.pipeline import wrap_invoke as wrap

    calls, work = Calls(), Work()
    phases = ("trickle", "bulk", "advance")  # the harness's phases: pipeline.PIPELINE
    with calls.counting_everything(), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # powertools: "No application metrics to publish"
        logger.setLevel("WARNING")
        stack = LocalStack(ROOT / "content", WRITE_KEY, "admin", manual_start=MONDAY)
        stack.start()
        try:
            for service in (*HANDLER_SERVICES, "sns"):
                calls.attach(aws.client(service))
            for service in ("dynamodb", "dynamodbstreams", "sqs"):
                calls.attach(stack.client(service), caller=PUMP)
            DEFAULT_PROVIDERS["secrets"] = SecretsProvider()
            calls.attach(DEFAULT_PROVIDERS["secrets"].client)
            wrap(stack, calls, work)
            calls.reset()
            calls.phase = "bulk"
            ingest(stack, calls, work, requests(range(FEEDBACK_LEADS)), drain="all")
            calls.phase = "advance"
            stack.advance(ADVANCE)
            outbox = [m for m in stack.outbox() if m["lead_id"]]
            calls.phase = "feedback"
            now = stack.now()
            fed = 0
            for mail in outbox:
                for batch in (("delivery",), ("open", "click")):
                    after = {"delivery": timedelta(seconds=2), "open": timedelta(hours=1), "click": timedelta(hours=2)}
                    stack.ses_records([_feedback(mail, kind, after[kind], now) for kind in batch])
                    stack.drain()
                    fed += len(batch)
            calls.phase = "content"
            first = "emails/awareness-01-why-drips-stall.md"
            stack.upload_content(first, (ROOT / "content" / first).read_text())
            lead_bytes, event_bytes, leads = _item_sizes(stack, c)
            dead = len(stack.captured.dead_letters)
        finally:
            stack.stop()

    def unit(name: str, per: str, units: float, phase_set: tuple[str, ...]) -> Unit:
        counted = {
            f"{s} {o}": n / units for (p, w, s, o), n in calls.counts.items() if w == name and p in phase_set and n
        }
        seconds = sum(work.seconds[p, name] for p in phase_set)
        waiting = sum(calls.waiting[p, name] for p in phase_set)
        return Unit(per, counted, 1000 * max(0.0, seconds - waiting) / units, sum(counted.values()), int(units))

    units: dict[str, Unit] = {}
    notes: list[str] = []
    email_records = work.records["feedback", "email_events"]
    if email_records:
        units["email_event"] = unit("email_events", "SES feedback event", email_records, ("feedback",))
    else:
        notes.append(
            f"no SES record reached the email-events Lambda ({len(outbox)} emails sent, {dead} dead letters): "
            "the email-event unit is derived"
        )
    alert_records = sum(work.records[p, "alerts"] for p in phases)
    if alert_records:
        units["alert"] = unit("alerts", "sales alert", alert_records, phases)
    else:
        notes.append("no sales alert happened in the measured run: the alert unit is derived")
    uploads = work.invocations["content", "content_check"]
    if uploads:
        units["content_upload"] = unit("content_check", "content upload", uploads, ("content",))
    scored = work.records["feedback", "scorer"]
    notes.append(
        f"local stack: {FEEDBACK_LEADS} leads, {len(outbox)} emails, {fed} SES records fed "
        f"({email_records} reached the email-events Lambda, {scored} stream records followed), "
        f"{alert_records} sales alerts, {uploads} content upload(s); {leads} leads measured for item sizes"
    )
    return Measured(units, scored / email_records if email_records else 1.0, lead_bytes, event_bytes, notes)


def _item_sizes(stack: Any, c: Any) -> tuple[float, float, int]:
    """Mean bytes per lead on the leads table (every item under LEAD# and PROFILE#, and the due index's keys) and
    per item on the events table, by DynamoDB's item-size rules (attribute names and values)."""
    from tests.bench.dispatch import item_size  # the dispatch bench's own size rule

    def scan(table: str) -> list[dict[str, Any]]:
        pages = stack.client("dynamodb").get_paginator("scan").paginate(TableName=table)
        return [item for page in pages for item in page["Items"]]

    leads_items, events_items = scan(c.LEADS_TABLE), scan(c.EVENTS_TABLE)
    leads = sum(1 for i in leads_items if i[c.LEADS_PK]["S"].startswith("LEAD#") and i[c.LEADS_SK]["S"] == "STATE")
    lead_bytes = sum(item_size(i) for i in leads_items if not i[c.LEADS_PK]["S"].startswith("METRICS#"))
    event_bytes = sum(item_size(i) for i in events_items)
    return lead_bytes / max(1, leads), event_bytes / max(1, len(events_items)), leads


# --- the report -------------------------------------------------------------------------------------------------


def money(x: float) -> str:
    if x >= 100:
        return f"${x:,.0f}"
    if x >= 1:
        return f"${x:,.2f}"
    if x >= 0.01:
        return f"${x:.2f}"
    return "<$0.01" if x > 0 else "$0"


def quantity(x: float) -> str:
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:,.2f}" if x >= 0.01 else ("0" if x == 0 else f"{x:.2g}")


def summary_table(results: list[Size], bold: bool = False) -> str:
    """The sizes against the goal; `bold` marks the verdicts as docs/benchmarks.md does (`make bench`'s summary)."""
    head = "| leads a month | fixed | per-lead costs | AWS in all | HubSpot Pro | ratio | goal 1% |\n"
    head += "| ---: | ---: | ---: | ---: | ---: | ---: | --- |\n"
    return head + "".join(
        f"| {s.leads:,} | {money(s.fixed)} | {money(s.variable)} | {money(s.total)} | {money(s.hubspot)} "
        f"| {100 * s.ratio:.2f}% | {f'**{s.verdict}**' if bold else s.verdict} |\n"
        for s in results
    )


def lines_table(results: list[Size], fixed: bool) -> str:
    keys: list[tuple[str, str, str]] = []
    for s in results:
        for line in s.lines:
            key = (line.service, line.item, line.unit)
            if line.fixed == fixed and key not in keys:
                keys.append(key)
    largest = results[-1]
    amounts = {(r.leads, (ln.service, ln.item, ln.unit)): ln for r in results for ln in r.lines}
    keys.sort(key=lambda k: -amounts[largest.leads, k].dollars if (largest.leads, k) in amounts else 0)
    out = "| service | item | " + " | ".join(f"{s.leads:,} leads" for s in results) + " |\n"
    out += "| --- | --- |" + " ---: |" * len(results) + "\n"
    for key in keys:
        cells = []
        for s in results:
            found = amounts.get((s.leads, key))
            cells.append(f"{money(found.dollars)} ({quantity(found.quantity)} {found.unit})" if found else "-")
        out += f"| {key[0]} | {key[1]} | " + " | ".join(cells) + " |\n"
    return out


def services_table(results: list[Size]) -> str:
    order = list(results[-1].by_service())
    out = "| service | " + " | ".join(f"{s.leads:,} leads" for s in results) + " |\n"
    out += "| --- |" + " ---: |" * len(results) + "\n"
    for service in order:
        out += f"| {service} | " + " | ".join(money(s.by_service().get(service, 0.0)) for s in results) + " |\n"
    return out


def dollars(x: float) -> str:
    """A list price as written: at least two decimals, no trailing zeros past them, no exponent."""
    text = f"{x:,.10f}".rstrip("0")
    whole, _, cents = text.partition(".")
    return f"${whole}.{cents.ljust(2, '0')}"


def prices_table(prices: Mapping[str, Price]) -> str:
    out = "| price | us-east-1 list price | source (as of) |\n| --- | ---: | --- |\n"
    for name, price in prices.items():
        if price.value < 1e-4 and not price.unit.startswith("GB"):
            value = f"{dollars(price.value * 1e6)} per million ({price.unit})"  # as AWS quotes request prices
        else:
            value = f"{dollars(price.value)} per {price.unit}"
        checked = f"checked {CHECKED}" if price.checked else "**not re-checked here**"
        out += f"| `{name}` | {value} | {price.source} ({checked}) |\n"
    return out


def units_table(units: Mapping[str, Unit]) -> str:
    out = "| unit | per | source | handler ms | AWS calls | requests per unit |\n"
    out += "| --- | --- | --- | ---: | ---: | --- |\n"
    for name, unit in units.items():
        requests = ", ".join(f"{k} {v:.3g}" for k, v in sorted(unit.requests.items()) if v)
        out += f"| {name} | {unit.per} | {unit.source} | {unit.handler_ms:.1f} | {unit.aws_calls:.2f} | {requests} |\n"
    return out


def activity_table(activity: Activity, records_per_feedback: float) -> str:
    rows = [(f.replace("_", " "), getattr(activity, f)) for f in activity.__dataclass_fields__]
    rows.append(("stream records per SES feedback event", records_per_feedback))
    out = "| parameter | value |\n| --- | ---: |\n"
    for name, value in rows:
        if isinstance(value, Mapping):
            shown = ", ".join(f"{k} {v:g}" for k, v in value.items())
        else:
            shown = f"{value:,.0f}" if value >= 1_000 else f"{value:.4g}"
        out += f"| {name} | {shown} |\n"
    return out


def biggest(size: Size, n: int = 5) -> list[Line]:
    return sorted(size.lines, key=lambda line: -line.dollars)[:n]


def lean_stack(stack: Stack) -> Stack:
    """The stack with the three fixed-cost levers docs/cost.md names applied."""
    return replace(
        stack,
        metrics=tuple(m for m in stack.metrics if m in LEAN_METRICS),
        dashboards=0,
        secrets=max(0, stack.secrets - 1),
    )


def render(
    results: list[Size],
    heavy: list[Size],
    lean: list[Size],
    units: Mapping[str, Unit],
    meta: dict[str, Any],
    activity: Activity,
    stack: Stack,
    records_per_feedback: float,
    notes: list[str],
) -> str:
    small = results[0]
    fixed_lines = sorted((ln for ln in small.lines if ln.fixed), key=lambda ln: -ln.dollars)
    goal_small = GOAL * small.hubspot
    ceiling = stack.custom_metrics * PRICES["custom_metric"].value
    metrics_cost = {s.leads: metrics_dollars(s) for s in results}
    levers = lever_stacks(stack)
    saved = {
        name: [
            s.total
            - sum(ln.dollars for ln in monthly_cost(s.leads, rates(), activity, units, st, records_per_feedback))
            for s in results
        ]
        for name, st in levers.items()
    }
    only_dashboard = sizes(rates(), activity, units, levers["dashboard"], records_per_feedback)
    faults = sum(1 for m in stack.metrics if METRIC_EMISSION[m].kind == FAULTS)
    faults_every_hour = faults * (HOURS_A_MONTH - activity.fault_hours) / HOURS_A_MONTH * PRICES["custom_metric"].value
    top = results[-1]
    slow_units = {name: replace(unit, handler_ms=3 * unit.handler_ms) for name, unit in units.items()}
    slower = sum(
        ln.dollars for ln in monthly_cost(top.leads, rates(), activity, slow_units, stack, records_per_feedback)
    )
    parts = [
        "# What the engine costs to run, beside HubSpot",
        "",
        "<!-- Generated by tests/bench/cost.py: do not edit by hand. Regenerate with `make bench` or "
        "`.venv/bin/python -m tests.bench.cost`. -->",
        "",
        f"_Generated {datetime.now(UTC):%Y-%m-%d} on {platform.machine()}, Python {platform.python_version()}, by "
        f"`tests/bench/cost.py`, from the requests per unit of work measured {meta['measured']} on "
        f"{meta['machine']} (`{meta['path']}`). Region us-east-1, list prices, no free tier, 30-day month._",
        "",
        "The goal (issue 12): the engine's whole monthly AWS bill at most **1%** of HubSpot Marketing Hub "
        "Professional's list price for the same number of marketing contacts.",
        "",
        summary_table(results),
        f"Fixed costs are what the stack costs with no leads at all; per-lead costs grow with the activity below. "
        f"HubSpot: ${PRICES['hubspot_pro_base'].value:,.0f} a month (monthly billing; $800 with an annual "
        f"commitment) including 2,000 marketing contacts, plus ${PRICES['hubspot_pro_block'].value:,.0f} a month for "
        f"each further 5,000 (that block price is not re-checked here).",
        "",
        "By service (fixed and per-lead together):",
        "",
        services_table(results),
        "## Honest reading",
        "",
    ]
    for s in results:
        parts.append(
            f"- **{s.leads:,} leads: {s.verdict}** ({100 * s.ratio:.2f}% of HubSpot; the goal allows "
            f"{money(GOAL * s.hubspot)}). Largest lines: "
            + "; ".join(f"{ln.service} {ln.item} {money(ln.dollars)}" for ln in biggest(s, 4))
            + "."
        )
    parts += [
        "",
        f"At {small.leads:,} leads the fixed costs ({money(small.fixed)}) alone are "
        f"{100 * small.fixed / small.hubspot:.2f}% of HubSpot's {money(small.hubspot)}, "
        f"{'over' if small.fixed > goal_small else 'under'} the {money(goal_small)} the goal allows"
        + (
            f", leaving {money(goal_small - small.fixed)} for all that grows with leads ({money(small.variable)} here)"
            if small.fixed <= goal_small
            else ""
        )
        + ": at the small sizes the goal is decided by what the stack costs standing still, not by leads. The "
        "largest fixed lines: "
        + "; ".join(f"{ln.service} {ln.item} {money(ln.dollars)}" for ln in fixed_lines[:4])
        + f". CloudWatch custom metrics are billed for the hours each is emitted in (prorated, "
        f"${PRICES['custom_metric'].value:.2f} a metric-month of {HOURS_A_MONTH} hours), and a count is emitted only "
        f"when it is not zero: "
        + ", ".join(f"{money(metrics_cost[s.leads])} at {s.leads:,} leads" for s in results)
        + ' ("Custom metrics" below). If every metric were emitted every hour (the ceiling this model counted '
        f"before), the {stack.custom_metrics} metrics would cost {money(ceiling)} at every size. What would fix "
        "it, each saving at " + ", ".join(f"{s.leads:,}" for s in results) + " leads:",
        "",
        f"1. No dashboard of the stack's own (or count on the account's three free ones): "
        f"{savings(saved['dashboard'])} less. Alone it brings "
        + ", ".join(f"{s.leads:,} leads to {100 * s.ratio:.2f}% ({s.verdict})" for s in only_dashboard)
        + ".",
        f"2. Emit as CloudWatch metrics only the {len(LEAN_METRICS)} operators watch "
        "(tests/infra/test_monitoring.py's list), and "
        f"log the other counts as plain fields of the structured log line (Logs Insights counts them; no metric "
        f"charge): {savings(saved['metrics'])} less; it grows with leads, as more counts are emitted in most hours.",
        f"3. Delete the write-key seed secret once the write-keys secret holds its value (nothing reads it "
        f"afterwards): {savings(saved['secret'])} less.",
        "",
        "With all three:",
        "",
        summary_table(lean),
        f"Against HubSpot's annual-commitment price ($800 a month, not $890) the {lean[0].leads:,}-lead bill with "
        f"all three would be {100 * lean[0].total / (lean[0].hubspot - 90):.2f}% "
        f"({'PASS' if lean[0].total <= GOAL * (lean[0].hubspot - 90) else 'MISS'}, "
        f"{money(abs(GOAL * (lean[0].hubspot - 90) - lean[0].total))} "
        f"{'under' if lean[0].total <= GOAL * (lean[0].hubspot - 90) else 'over'} its 1%). "
        f"The {stack.alarm_metrics} alarms ({money(stack.alarm_metrics * PRICES['alarm_metric'].value)}) and the "
        f"customer-managed key of the alarms topic ({money(stack.kms_keys * PRICES['kms_key'].value)}) stay: they "
        f"are what wakes an operator. With every always-free tier (10 metrics, 10 alarms, 3 dashboards, 5 GB of "
        f"logs, 1 M Lambda requests and 400,000 GB-s, 1 M SQS requests, 100,000 traces) a small install's bill falls "
        f"to a few dollars, but the free tiers belong to the AWS account, not to this stack, so they are not counted.",
        "",
        f"At {top.leads:,} leads the bill is dominated by the lines that grow with emails and messages: "
        + "; ".join(f"{ln.service} {ln.item} {money(ln.dollars)}" for ln in biggest(top, 3))
        + f". SES alone is $0.10 per 1,000 emails: the goal leaves {money(GOAL * top.hubspot)} for "
        f"{top.leads:,} contacts, so every email a lead gets in a month costs "
        f"{100 * top.leads * PRICES['ses_email'].value / (GOAL * top.hubspot):.0f}% of the budget. HubSpot's "
        f"price at a million contacts is the block price times 200 blocks; HubSpot's catalog bands large tiers "
        f"with volume discounts not re-checked here, so the real ratio there is higher than shown.",
        "",
        f"The handlers' own time was measured on this machine's full cores; a 512 MB Lambda gets about a third of "
        f"a vCPU. Were every handler three times slower there, the {top.leads:,}-lead bill would grow by "
        f"{money(slower - top.total)} to {money(slower)}, {100 * slower / top.hubspot:.2f}% of HubSpot "
        f"({'PASS' if slower <= GOAL * top.hubspot else 'MISS'}): Lambda duration is a small line.",
        "",
        "Heavier activity (30 messages and 4 emails per lead a month, other parameters unchanged):",
        "",
        summary_table(heavy),
        "## Custom metrics, by the hours they are emitted",
        "",
        f"CloudWatch bills a custom metric ${PRICES['custom_metric'].value:.2f} a month, prorated by the hours it is "
        f"emitted in ({HOURS_A_MONTH} in a 30-day month). `nurture.runtime.observability.count` emits nothing for a "
        f"zero, so a count exists only in the hours something happened; each `Metric` is in one class "
        f"(`METRIC_EMISSION` in tests/bench/cost.py; a unit test fails if a new metric has none). The dispatcher's "
        f"lag gauge is emitted every tick: every hour. A count emitted with events spread at random over H hours is "
        f"expected in H x (1 - exp(-events / H)) of them: H is the month's {HOURS_A_MONTH} hours for what can "
        f"happen at any hour (messages, stage changes, alerts, opens and clicks, timers), and the send window's "
        f"{activity.send_window_hours:.0f} hours (the starter programme's weekdays 09:00-17:00 in one time zone; leads "
        f"in several zones widen it) for what comes with sending (emails queued and sent, their deliveries, scanners, "
        f"sequences running out). Fault counts are assumed emitted in {activity.fault_hours:g} hours a month each, "
        f"whatever the size; were every one of them emitted every hour (a bad month, or many faults at scale) they "
        f"would add {money(faults_every_hour)}. "
        f"Real traffic bunches into working hours, so it touches fewer hours than random arrivals: these figures "
        f"lean high. The events: stage changes by the stage entered are tests/bench/replay.py's simulated year "
        f"(3,683 for 1,000 leads, {sum(activity.transitions_per_lead.values()):.2f} a lead-month); merges "
        f"({activity.merges_per_lead:g} a lead-month), sequences running out ({activity.exhausted_per_lead:g}) and "
        f"scanner opens and clicks ({activity.scanner_events_per_email:g} an email) are assumptions; an owner is "
        f"counted as assigned on every sales alert (at most one each); the dispatcher's timers (timeouts, returns, "
        f"suppressions: any hour) are taken as many as the leads entering re-engagement or suppression.",
        "",
        metrics_tables(results, activity, units, stack),
        "## Activity and assumptions",
        "",
        "Each lead, each month (change them in `Activity` in tests/bench/cost.py):",
        "",
        activity_table(activity, records_per_feedback),
        "DynamoDB request units: GetItem strongly consistent, items under 4 KB: 1 RRU; Query of the keys-only due "
        "index (eventually consistent, one page under 4 KB): 0.5 RRU; BatchGetItem: 1 RRU per key; PutItem, "
        "UpdateItem, DeleteItem, items under 1 KB (the dispatch bench's mean lead item is 800 bytes): 1 WRU; "
        "TransactWriteItems: 2 WRU per item; a lead write that moves its due time rewrites its due-index entry "
        "(delete and put: 2 WRU). Lambda's reads of the events table's stream are free. Lambda duration: the "
        "handler's own time per unit plus its AWS calls times the in-region latency, at each function's memory "
        "(arm64, billed per 1 ms), plus a per-invocation overhead and the INIT of cold starts (billed for "
        "managed runtimes since August 2025; not re-checked here). SES's records and "
        "S3's object events reach the default bus as AWS service events (free); the custom events the scorer and "
        "the alerts Lambda put on the nurture bus are billed. The DynamoDB tables, SQS queues and the SNS sales topic "
        "use AWS-owned or AWS-managed keys (no key-month charge); the one customer-managed key encrypts the alarms "
        "topic. Not counted: data transfer out of API responses (a few hundred bytes each), the analytics export "
        "(S3, Glue, Athena: run on demand), DynamoDB storage's first free 25 GB, SES dedicated IPs (not used).",
        "",
        f"The stack ({stack.source}): {len(stack.memory_mb)} functions at "
        + ", ".join(f"{fn} {mb} MB" for fn, mb in sorted(stack.memory_mb.items()))
        + f"; {stack.secrets} secrets, {stack.kms_keys} customer-managed KMS key(s), {stack.alarm_metrics} alarm "
        f"metrics, {stack.dashboards} dashboard(s), {stack.custom_metrics} custom metrics, {stack.sqs_triggers} "
        f"queues long-polled by Lambda"
        + (f", SnapStart on {', '.join(stack.snapstart_functions)}" if stack.snapstart_functions else "")
        + ".",
        "",
        "## Measured units of work",
        "",
        units_table(units),
        "".join(f"- {note}\n" for note in notes),
        "## Fixed monthly costs",
        "",
        lines_table(results, fixed=True),
        "## Costs that grow with leads",
        "",
        lines_table(results, fixed=False),
        "## Prices",
        "",
        'Every price the model uses, us-east-1. "Checked" means a stored copy of the page named states it; the '
        "others are the best-known list prices, not re-checked here (no internet on the machine that wrote this).",
        "",
        prices_table(PRICES),
    ]
    return "\n".join(parts).rstrip() + "\n"


def metrics_tables(results: list[Size], activity: Activity, units: Mapping[str, Unit], stack: Stack) -> str:
    """The custom metrics' hours by emission class, then metric by metric, at each size."""
    price = PRICES["custom_metric"].value / HOURS_A_MONTH
    hours = {
        s.leads: {m: metric_hours(m, volumes(s.leads, activity, units), activity) for m in stack.metrics}
        for s in results
    }
    sizes_head = " | ".join(f"{s.leads:,} leads" for s in results)
    out = f"| class | metrics | emitted | {sizes_head} |\n| --- | ---: | --- |" + " ---: |" * len(results) + "\n"
    for kind, described in EMISSION_CLASSES.items():
        names = [m for m in stack.metrics if METRIC_EMISSION[m].kind == kind]
        if not names:
            continue
        cells = [
            f"{sum(hours[s.leads][m] for m in names):,.0f} h, {money(sum(hours[s.leads][m] for m in names) * price)}"
            for s in results
        ]
        out += f"| {kind} | {len(names)} | {described} | " + " | ".join(cells) + " |\n"
    total = [sum(hours[s.leads].values()) for s in results]
    out += (
        f"| all | {stack.custom_metrics} | as above | "
        + " | ".join(f"**{h:,.0f} h, {money(h * price)}**" for h in total)
        + " |\n"
    )
    ceiling = stack.custom_metrics * HOURS_A_MONTH
    out += (
        f"| if every metric were emitted every hour | {stack.custom_metrics} | every hour (the ceiling) | "
        + " | ".join(f"{ceiling:,} h, {money(ceiling * price)}" for _ in results)
        + " |\n"
    )
    out += (
        f"\nMetric by metric, the hours a month it is emitted in:\n\n| metric | class | one event is | {sizes_head} |\n"
    )
    out += "| --- | --- | --- |" + " ---: |" * len(results) + "\n"
    for kind in EMISSION_CLASSES:
        for m in (m for m in stack.metrics if METRIC_EMISSION[m].kind == kind):
            cells = [
                f"{hours[s.leads][m]:,.0f}" if hours[s.leads][m] >= 1 else f"{hours[s.leads][m]:.2g}" for s in results
            ]
            out += f"| `{m}` | {kind} | {METRIC_EMISSION[m].events} | " + " | ".join(cells) + " |\n"
    return out


def metrics_dollars(size: Size) -> float:
    return sum(ln.dollars for ln in size.lines if ln.item.startswith("custom metrics"))


def savings(amounts: Sequence[float]) -> str:
    return " / ".join(money(x) for x in amounts)


def lever_stacks(stack: Stack) -> dict[str, Stack]:
    """Each fixed-cost lever docs/cost.md names, applied alone."""
    return {
        "dashboard": replace(stack, dashboards=0),
        "metrics": replace(stack, metrics=tuple(m for m in stack.metrics if m in LEAN_METRICS)),
        "secret": replace(stack, secrets=max(0, stack.secrets - 1)),
    }


def record_body(
    results: list[Size], lean: list[Size], meta: Mapping[str, Any], activity: Activity, stack: Stack
) -> str:
    passing = ", ".join(f"{s.leads:,}: {100 * s.ratio:.2f}% {s.verdict}" for s in lean)
    return (
        summary_table(results, bold=True)
        + f"\nRequests per unit of work from `{meta['path']}` (measured {meta['measured']} on {meta['machine']}); "
        f"activity: {activity.messages_per_lead:g} messages, {activity.emails_per_lead:g} emails, "
        f"{activity.feedback_per_email:g} SES records an email, {activity.alerts_per_lead:g} sales alerts per lead "
        f"a month. Fixed "
        f"costs (dashboard, alarms, secrets, a KMS key, idle queue polling) dominate small installs. Custom metrics "
        f"are billed by the hours they are emitted in, and counts no longer emit their zeros: "
        + ", ".join(f"{money(metrics_dollars(s))} at {s.leads:,}" for s in results)
        + f" (every metric every hour would be {money(stack.custom_metrics * PRICES['custom_metric'].value)}). With "
        f"no dashboard of the stack's own, fewer custom metrics and one secret fewer: {passing}. Full model, "
        f"assumptions and prices: [docs/cost.md](cost.md).\n"
    )


def console(results: list[Size]) -> str:
    rows = [("leads", "fixed", "per-lead", "AWS total", "HubSpot Pro", "ratio", "goal 1%")]
    rows += [
        (
            f"{s.leads:,}",
            money(s.fixed),
            money(s.variable),
            money(s.total),
            money(s.hubspot),
            f"{100 * s.ratio:.2f}%",
            s.verdict,
        )
        for s in results
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=Path, default=REQUESTS)
    parser.add_argument("--derived", action="store_true", help="do not measure the three extra units")
    args = parser.parse_args(argv)
    if not args.requests.exists():
        sys.exit(f"{args.requests} is missing: run `python -m tests.bench.pipeline` first (it writes it)")
    units, meta = load_units(args.requests)
    meta["path"] = str(args.requests.relative_to(ROOT) if args.requests.is_relative_to(ROOT) else args.requests)
    activity = Activity()
    records_per_feedback = DERIVED_RECORDS_PER_FEEDBACK
    notes: list[str] = []
    extra = dict(DERIVED_UNITS)
    if not args.derived:
        started = time.perf_counter()
        try:
            measured = measure()
        except Exception as error:  # the doc still gets written, saying the three units are derived, and why
            print(f"measuring on the local stack failed ({error!r}): using the derived units", file=sys.stderr)
            measured = Measured({}, DERIVED_RECORDS_PER_FEEDBACK, activity.lead_bytes, activity.event_bytes, [])
            measured.notes.append(f"the local-stack measurement failed ({type(error).__name__}): derived units")
        extra |= measured.units
        records_per_feedback = measured.records_per_feedback
        activity = replace(activity, lead_bytes=measured.lead_bytes, event_bytes=measured.event_bytes)
        notes += measured.notes
        notes.append(
            f"mean item sizes measured on the same run: {measured.lead_bytes:,.0f} bytes per lead on the leads "
            f"table after two weeks of nurture (state, profile links, owner, send records, the 30-day mail log), "
            f"{measured.event_bytes:,.0f} bytes per events-table item ({time.perf_counter() - started:.0f} s)"
        )
    else:
        notes.append("--derived: the email-event, alert and content-upload units are derived from the code")
    units = {**units, **extra}
    stack = current_stack()
    prices = rates()
    results = sizes(prices, activity, units, stack, records_per_feedback)
    heavy_activity = replace(activity, messages_per_lead=30.0, page_views_per_lead=24.0, emails_per_lead=4.0)
    heavy = sizes(prices, heavy_activity, units, stack, records_per_feedback)
    lean = sizes(prices, activity, units, lean_stack(stack), records_per_feedback)
    print(console(results))
    COST_MD.write_text(render(results, heavy, lean, units, meta, activity, stack, records_per_feedback, notes))
    print(f"\nwrote {COST_MD.relative_to(ROOT)}")
    from tests.bench.record import record

    record(
        "cost",
        "Monthly AWS cost beside HubSpot Marketing Hub Professional",
        record_body(results, lean, meta, activity, stack),
    )


if __name__ == "__main__":
    main()
