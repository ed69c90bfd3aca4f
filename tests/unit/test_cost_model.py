"""The cost model's arithmetic (tests/bench/cost.py) on a small fixture: a bill worked out by hand for 1,000 leads,
every service priced (a request with no price fails rather than vanishing), fixed costs apart from per-lead ones."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from nurture.runtime.observability import Metric
from tests.bench.cost import (
    HOURS_A_MONTH,
    LEAN_METRICS,
    METRIC_EMISSION,
    PRICES,
    SECONDS_A_MONTH,
    Activity,
    Line,
    Stack,
    Unit,
    hours_with_events,
    hubspot_price,
    load_units,
    metric_hours,
    monthly_cost,
    rates,
    sizes,
    stack_from_template,
    traces,
    volumes,
)
from tests.support import starter

# docs/bench/requests.json's shape, with the requests per unit of the bench:pipeline section of docs/benchmarks.md
# (measured 2026-11-23; scorer: the bulk row). handler_ms are round figures for the test, not measurements.
FIXTURE = {
    "measured": "2026-11-23",
    "machine": "x86_64 (fixture)",
    "units": {
        "ingest": {
            "per": "message accepted",
            "count": 328,
            "requests": {"dynamodb PutItem": 1.0, "secretsmanager GetSecretValue": 0.003},
            "handler_ms": 2.0,
            "aws_calls": 1.003,
        },
        "scorer": {
            "per": "stream record",
            "count": 165,
            "requests": {
                "dynamodb GetItem": 0.21,
                "dynamodb BatchGetItem": 0.45,
                "dynamodb PutItem": 0.02,
                "dynamodb TransactWriteItems": 0.43,
                "dynamodb UpdateItem": 0.25,
                "events PutEvents": 0.25,
            },
            "handler_ms": 5.0,
            "aws_calls": 1.61,
        },
        "dispatcher_lead": {
            "per": "lead ticked",
            "count": 149,
            "requests": {
                "dynamodb GetItem": 1.0,
                "dynamodb PutItem": 1.0,
                "dynamodb UpdateItem": 1.0,
                "dynamodb Query": 0.32,
                "sqs SendMessageBatch": 0.11,
            },
            "handler_ms": 3.0,
            "aws_calls": 3.43,
        },
        "dispatcher_invocation": {
            "per": "invocation",
            "count": 3,
            "requests": {"dynamodb Query": 16.0},
            "handler_ms": 20.0,
            "aws_calls": 16.0,
        },
        "sender": {
            "per": "email sent",
            "count": 149,
            "requests": {
                "dynamodb GetItem": 1.0,
                "dynamodb PutItem": 2.0,
                "dynamodb UpdateItem": 1.0,
                "sesv2 SendEmail": 1.0,
                "s3 GetObject": 0.03,
            },
            "handler_ms": 4.0,
            "aws_calls": 5.03,
        },
    },
}
EXTRA = {
    "email_event": Unit("SES feedback event", {"dynamodb GetItem": 1.0, "dynamodb PutItem": 2.0}, 2.0, 3.0),
    "alert": Unit("sales alert", {"dynamodb PutItem": 2.0, "sns Publish": 1.0, "events PutEvents": 1.0}, 4.0, 4.0),
    "content_upload": Unit("content upload", {"s3 GetObject": 2.0}, 40.0, 2.0),
}
STACK = Stack(memory_mb=dict.fromkeys(("ingest", "scorer", "dispatcher", "sender", "email_events", "alerts"), 512))


@pytest.fixture
def units(tmp_path: Path) -> dict[str, Unit]:
    path = tmp_path / "requests.json"
    path.write_text(json.dumps(FIXTURE))
    loaded, meta = load_units(path)
    assert meta == {"measured": "2026-11-23", "machine": "x86_64 (fixture)"}
    return {**loaded, **EXTRA}


def total(lines: list[Line], service: str | None = None, fixed: bool | None = None) -> float:
    return sum(line.dollars for line in lines if service in (None, line.service) and fixed in (None, line.fixed))


# Every price zero: each test prices only what it computes by hand.
ZERO = dict.fromkeys(PRICES, 0.0)


def test_ses_and_dynamodb_writes_for_1000_leads_by_hand(units: dict[str, Unit]) -> None:
    activity = Activity()
    prices = ZERO | {"ses_email": 0.0001, "ddb_wru": 1e-6}
    lines = monthly_cost(1_000, prices, activity, units, STACK, records_per_feedback=1.0)
    # 1,000 leads x 2 emails = 2,000 emails at $0.10 per 1,000
    assert total(lines, "SES") == pytest.approx(0.20)
    # WRU per lead-month, by hand (per unit x volume):
    messages, emails = 10_000, 2_000
    feedback = emails * 1.45
    records = messages + feedback
    ticked = emails * 149 / 149
    wru = (
        messages * 1.0  # ingest PutItem
        + records * (0.02 + 0.43 * 4 + 0.25 + 0.5)  # scorer Put, Transact (2 items x 2 WRU), Update, due index
        + ticked * (1.0 + 1.0 + 2.0)  # dispatcher Put, Update, due index moved (delete + put)
        + emails * (2.0 + 1.0)  # sender Put x2, Update
        + feedback * 2.0  # email events Put x2
        + 1_000 * 0.05 * 2.0  # alerts Put x2
    )
    # and no fixed writes: the dispatcher's scheduled runs only read (16 Query), content uploads only touch S3
    assert total(lines, "DynamoDB") == pytest.approx(wru * 1e-6)


def test_a_thousand_leads_cost_by_hand_with_only_fixed_prices(units: dict[str, Unit]) -> None:
    prices = ZERO | {
        "secret": 0.40,
        "kms_key": 1.0,
        "alarm_metric": 0.10,
        "dashboard": 3.0,
        "custom_metric": 0.30,
        "sqs_request": 0.40 / 1e6,
    }
    stack = replace(STACK, secrets=4, kms_keys=1, alarm_metrics=20, dashboards=1, sqs_triggers=3)
    lines = monthly_cost(1_000, prices, Activity(), units, stack, records_per_feedback=1.0)
    idle_polls = 3 * 5 * 3 * 60 * 24 * 30 * 0.40 / 1e6  # 3 queues, 5 pollers, a 20 s long poll each, all month
    # Fixed metric-hours: the lag gauge every hour, 12 fault counts 10 h each, ContentPublished with 20 uploads
    metric_hours_fixed = 720 + 12 * 10 + 720 * (1 - math.exp(-20 / 720))
    fixed = 4 * 0.40 + 1.0 + 20 * 0.10 + 3.0 + metric_hours_fixed / 720 * 0.30 + idle_polls
    assert total(lines, fixed=True) == pytest.approx(fixed)
    assert fixed == pytest.approx(8.74, abs=0.01)
    # SQS per lead: the dispatcher's batches, the pollers' receive + delete per invocation, one send per rule target
    emails, feedback, alerts = 2_000, 2_900, 50
    sender_invocations = emails / (1 / 0.11)
    email_events_invocations = feedback  # 2,900 a month is far below one record in a 5-second window
    sqs = emails * 0.11 + 2 * (sender_invocations + email_events_invocations + alerts) + feedback + alerts
    assert total(lines, "SQS", fixed=False) == pytest.approx(sqs * 0.40 / 1e6)


def test_lambda_duration_is_handler_time_plus_waiting_on_aws_at_the_function_s_memory(units: dict[str, Unit]) -> None:
    activity = replace(Activity(), invocation_ms=0.0, init_s=0.0)
    only_ingest = {name: replace(unit, handler_ms=0.0, aws_calls=0.0) for name, unit in units.items()}
    only_ingest["ingest"] = units["ingest"]
    lines = monthly_cost(1_000, ZERO | {"lambda_gb_s_arm": 1.0}, activity, only_ingest, STACK)
    # 10,000 messages x (2 ms + 1.003 calls x 8 ms) x 0.5 GB
    assert total(lines, "Lambda", fixed=False) == pytest.approx(10_000 * (2.0 + 1.003 * 8) / 1000 * 0.5)


def test_every_service_is_priced_and_none_is_dropped(units: dict[str, Unit]) -> None:
    lines = monthly_cost(10_000, rates(), Activity(), units, STACK)
    services = {line.service for line in lines if line.dollars > 0}
    expected = {"Lambda", "API Gateway", "DynamoDB", "SES", "SQS", "EventBridge", "CloudWatch", "X-Ray"}
    expected |= {"Secrets Manager", "KMS", "SNS", "S3", "CloudFront"}
    assert services == expected
    # Dropping a price loses nothing quietly: the model refuses
    with pytest.raises(KeyError):
        monthly_cost(10_000, {k: v for k, v in rates().items() if k != "ses_email"}, Activity(), units, STACK)
    unknown = {**units, "sender": replace(units["sender"], requests={"pinpoint SendMessages": 1.0})}
    with pytest.raises(KeyError, match="pinpoint SendMessages"):
        monthly_cost(10_000, rates(), Activity(), unknown, STACK)


def test_fixed_costs_do_not_grow_with_leads_and_the_rest_does(units: dict[str, Unit]) -> None:
    small, large = sizes(rates(), Activity(), units, STACK, 1.0, leads=(1_000, 1_000_000))
    assert small.fixed == pytest.approx(large.fixed)

    def requests(size: Any) -> float:
        return sum(ln.dollars for ln in size.lines if not ln.fixed and not ln.item.startswith("custom metrics"))

    # a thousand times the leads, a little less than a thousand times the per-lead bill: batching, X-Ray's sampling
    # and the cap on cold starts grow slower than the traffic
    assert 500 * requests(small) < requests(large) <= 1_000 * requests(small)
    # custom metrics grow with leads (more hours hold an event) up to the ceiling: every metric every hour
    metric_hours = [sum(ln.quantity for ln in s.lines if ln.item.startswith("custom metrics")) for s in (small, large)]
    assert metric_hours[0] < metric_hours[1] <= len(METRIC_EMISSION) * HOURS_A_MONTH
    idle = monthly_cost(0, rates(), Activity(), units, STACK)
    assert total(idle, fixed=False) == 0
    assert total(idle) == pytest.approx(small.fixed)


def test_hubspot_professional_list_price_by_contacts() -> None:
    prices = rates()
    assert hubspot_price(1_000, prices) == 890
    assert hubspot_price(2_000, prices) == 890
    assert hubspot_price(2_001, prices) == 890 + 250
    assert hubspot_price(10_000, prices) == 890 + 2 * 250
    assert hubspot_price(1_000_000, prices) == 890 + 200 * 250


def test_ratio_and_verdict(units: dict[str, Unit]) -> None:
    [size] = sizes(rates(), Activity(), units, STACK, 1.0, leads=(10_000,))
    assert size.ratio == pytest.approx(size.total / 1_390)
    assert size.verdict == ("PASS" if size.total <= 13.90 else "MISS")


def test_traces_follow_the_default_sampling_rule() -> None:
    assert traces(0) == 0
    assert traces(1_000) == pytest.approx(1_000, rel=0.001)  # far below one a second: every one is traced
    busy = 100 * SECONDS_A_MONTH  # a hundred a second: one a second, then 5% of the rest
    assert traces(busy) == pytest.approx(SECONDS_A_MONTH + 0.05 * (busy - SECONDS_A_MONTH))
    assert traces(SECONDS_A_MONTH) == pytest.approx(SECONDS_A_MONTH * (1 - math.exp(-1) * 0.95), rel=0.001)


def test_the_stack_is_counted_from_a_template() -> None:
    template = {
        "Resources": {
            "IngestHandlerFunction55E2": {
                "Type": "AWS::Lambda::Function",
                "Properties": {"MemorySize": 1024, "SnapStart": {"ApplyOn": "PublishedVersions"}},
            },
            "CustomCDKBucketDeployment": {"Type": "AWS::Lambda::Function", "Properties": {"MemorySize": 128}},
            "A1": {"Type": "AWS::CloudWatch::Alarm", "Properties": {}},
            "A2": {
                "Type": "AWS::CloudWatch::Alarm",
                "Properties": {"Metrics": [{"MetricStat": {}}, {"MetricStat": {}}, {"Expression": "m1+m2"}]},
            },
            "S": {"Type": "AWS::SecretsManager::Secret", "Properties": {}},
            "K": {"Type": "AWS::KMS::Key", "Properties": {}},
            "D": {"Type": "AWS::CloudWatch::Dashboard", "Properties": {}},
            "SendQueue": {"Type": "AWS::SQS::Queue", "Properties": {}},
            "Stream": {"Type": "AWS::DynamoDB::Table", "Properties": {}},
            "M1": {
                "Type": "AWS::Lambda::EventSourceMapping",
                "Properties": {"EventSourceArn": {"Fn::GetAtt": ["SendQueue", "Arn"]}},
            },
            "M2": {
                "Type": "AWS::Lambda::EventSourceMapping",
                "Properties": {"EventSourceArn": {"Fn::GetAtt": ["Stream", "StreamArn"]}},
            },
        }
    }
    stack = stack_from_template(template, metrics=("EmailsSent", "OldestDueSeconds"), source="test")
    assert stack.memory_mb == {"ingest": 1024}
    assert stack.snapstart_functions == ("ingest",)
    assert (stack.alarm_metrics, stack.secrets, stack.kms_keys, stack.dashboards) == (3, 1, 1, 1)
    assert (stack.custom_metrics, stack.sqs_triggers) == (2, 1)


def test_every_metric_the_engine_emits_has_an_emission_class() -> None:
    unclassified = {m.value for m in Metric} - set(METRIC_EMISSION)
    assert not unclassified, f"classify them in METRIC_EMISSION (tests/bench/cost.py): {sorted(unclassified)}"
    assert set(METRIC_EMISSION) == {m.value for m in Metric}, "METRIC_EMISSION names a metric the enum does not"
    assert set(LEAN_METRICS) <= set(METRIC_EMISSION), "the lean lever keeps a metric the enum does not have"
    # the stages the transitions come from are the enum's
    entered = {m.value for m in Metric if m.value.startswith("Entered")}
    assert set(Activity().transitions_per_lead) == entered


def test_a_metric_without_a_class_is_refused_not_dropped(units: dict[str, Unit]) -> None:
    stack = replace(STACK, metrics=("EmailsSent", "SomethingNew"))
    with pytest.raises(KeyError, match="SomethingNew"):
        monthly_cost(1_000, rates(), Activity(), units, stack)


def test_the_send_window_is_the_starter_programme_s() -> None:
    window = starter().schedule.send_window
    hours_a_day = (window.end.hour * 60 + window.end.minute - window.start.hour * 60 - window.start.minute) / 60
    assert Activity().send_window_hours == pytest.approx(len(window.days) * hours_a_day * 30 / 7)  # 171.4


def test_hours_with_events_by_hand() -> None:
    assert hours_with_events(0, 0, 144) == 0
    assert hours_with_events(0, 720, 144) == pytest.approx(720 * (1 - math.exp(-1)))  # any hour: the window is moot
    assert hours_with_events(144, 0, 144) == pytest.approx(144 * (1 - math.exp(-1)))  # only inside the window
    assert hours_with_events(1e9, 1e9, 144) == pytest.approx(720)  # never more than every hour


def test_metric_hours_for_72_leads_by_hand(units: dict[str, Unit]) -> None:
    # 72 leads x 10 messages = 720 ingest requests; x 2 emails = 144 emails in a 144-hour send window;
    # 1.5 SES records an email: the delivery in the window, 0.5 (72 opens and clicks) at any hour
    activity = replace(
        Activity(),
        messages_per_lead=10,
        api_requests_per_message=1,
        emails_per_lead=2,
        feedback_per_email=1.5,
        send_window_hours=144,
        fault_hours=10,
    )
    work = volumes(72, activity, units)
    by_hand = {
        "OldestDueSeconds": 720.0,  # every tick, every hour
        "MessagesAccepted": 720 * (1 - math.exp(-720 / 720)),  # 455.1
        "EmailsSent": 144 * (1 - math.exp(-144 / 144)),  # 91.0
        "EmailEventsRecorded": 144 * (1 - math.exp(-(144 / 144 + 72 / 720))) + 576 * (1 - math.exp(-72 / 720)),
        "DispatchFailures": 10.0,  # a fault: the assumed hours
    }
    assert by_hand["EmailEventsRecorded"] == pytest.approx(150.9, abs=0.1)
    for name, hours in by_hand.items():
        assert metric_hours(name, work, activity) == pytest.approx(hours), name
    # priced prorated, $0.30 a metric-month of 720 hours; the gauge and the faults fixed, the rest per lead
    stack = replace(STACK, metrics=tuple(by_hand))
    lines = monthly_cost(72, ZERO | {"custom_metric": 0.30}, activity, units, stack)
    assert total(lines, fixed=True) == pytest.approx((720 + 10) / 720 * 0.30)
    per_lead = by_hand["MessagesAccepted"] + by_hand["EmailsSent"] + by_hand["EmailEventsRecorded"]
    assert total(lines, fixed=False) == pytest.approx(per_lead / 720 * 0.30)
    assert sum(ln.quantity for ln in lines if ln.unit == "metric-hours") == pytest.approx(sum(by_hand.values()))
