"""Alarms and the dashboard: a message in a dead-letter queue, a Lambda error, a scorer or dispatcher falling behind,
the SES reputation; each alarm notifies the alarms topic; the dashboard graphs what the handlers emit."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template

from infra.constructs import monitoring
from infra.stack import NurtureStack
from nurture import constants as c
from nurture.runtime.observability import Metric
from tests.infra.support import logical_id
from tests.support import ROOT


def _alarms(resources: dict[str, Any]) -> list[dict[str, Any]]:
    return [r["Properties"] for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"]


@pytest.mark.parametrize("queue", ["send", "scorer"])
def test_dead_letter_queues_alarm_on_the_first_message(
    resources: dict[str, Any], stack: NurtureStack, queue: str
) -> None:
    dlq = {"send": stack.dispatch.dlq, "scorer": stack.scoring.dlq}[queue]
    dimension = {"Name": "QueueName", "Value": {"Fn::GetAtt": [logical_id(dlq), "QueueName"]}}

    [alarm] = [a for a in _alarms(resources) if a.get("Dimensions") == [dimension]]
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm["Threshold"] == 1
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


@pytest.mark.parametrize("name", ["ingest", "scorer", "dispatcher", "sender"])
def test_every_function_alarms_on_errors(template: Template, stack: NurtureStack, name: str) -> None:
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "MetricName": "Errors",
            "Namespace": "AWS/Lambda",
            "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": logical_id(stack.functions[name].function)}}],
            "Threshold": 1,
        },
    )


def test_scorer_alarms_long_before_the_stream_drops_records(template: Template, stack: NurtureStack) -> None:
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "MetricName": "IteratorAge",
            "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": logical_id(stack.scoring.function)}}],
            "Threshold": 3_600_000,
        },
    )


# --- actions: every alarm notifies the alarms topic, which CloudWatch can publish to -----------------------------
def test_every_alarm_notifies_the_alarms_topic_when_it_fires_and_when_it_clears(
    resources: dict[str, Any], stack: NurtureStack
) -> None:
    topic = {"Ref": logical_id(stack.monitoring.topic)}
    alarms = _alarms(resources)

    assert len(alarms) == len(stack.monitoring.alarms) >= 20
    assert [a.get("AlarmDescription") for a in alarms if a.get("AlarmActions") != [topic]] == []
    assert [a.get("AlarmDescription") for a in alarms if a.get("OKActions") != [topic]] == []


def test_the_alarms_topic_is_encrypted_with_a_rotated_key_cloudwatch_may_use(
    resources: dict[str, Any], stack: NurtureStack
) -> None:
    topic = resources[logical_id(stack.monitoring.topic)]["Properties"]
    key = resources[logical_id(stack.monitoring.key)]["Properties"]

    # Not the SNS AWS-managed key (alias/aws/sns), whose policy CloudWatch is not in: alarms could not publish
    assert topic["KmsMasterKeyId"] == {"Fn::GetAtt": [logical_id(stack.monitoring.key), "Arn"]}
    assert key["EnableKeyRotation"] is True
    [cloudwatch] = [
        s for s in key["KeyPolicy"]["Statement"] if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert sorted(cloudwatch["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]


def test_only_this_account_s_alarms_may_publish_to_the_alarms_topic(
    resources: dict[str, Any], stack: NurtureStack
) -> None:
    topic = {"Ref": logical_id(stack.monitoring.topic)}
    [policy] = [
        r["Properties"]["PolicyDocument"]
        for r in resources.values()
        if r["Type"] == "AWS::SNS::TopicPolicy" and r["Properties"]["Topics"] == [topic]
    ]
    [allow] = [s for s in policy["Statement"] if s["Effect"] == "Allow"]

    assert allow["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert allow["Action"] == "sns:Publish"
    assert set(allow["Condition"]) == {"ArnLike", "StringEquals"}
    assert "aws:SourceAccount" in allow["Condition"]["StringEquals"]


def test_operators_find_the_alarms_topic_in_the_stack_outputs(
    template_json: dict[str, Any], stack: NurtureStack
) -> None:
    assert template_json["Outputs"]["AlarmsTopicArn"]["Value"] == {"Ref": logical_id(stack.monitoring.topic)}


def test_without_an_operations_email_nobody_is_subscribed(resources: dict[str, Any]) -> None:
    assert [
        r
        for r in resources.values()
        if r["Type"] == "AWS::SNS::Subscription" and r["Properties"]["Protocol"] == "email"
    ] == []


# --- the dispatcher falling behind ------------------------------------------------------------------------------
def test_the_dispatcher_alarms_when_a_lead_has_been_due_for_more_than_15_minutes(
    template: Template, stack: NurtureStack
) -> None:
    topic = {"Ref": logical_id(stack.monitoring.topic)}
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Namespace": "Nurture",
            "MetricName": Metric.OLDEST_DUE_SECONDS.value,
            "Dimensions": [{"Name": "service", "Value": "nurture"}],
            "Statistic": "Maximum",
            "Threshold": 15 * 60,
            "ComparisonOperator": "GreaterThanThreshold",
            # a dispatcher that stops reporting is heard of too
            "TreatMissingData": "missing",
            "InsufficientDataActions": [topic],
        },
    )


# --- SES reputation: warnings before AWS's review levels, and the pause above them -------------------------------
@pytest.mark.parametrize(
    ("metric", "threshold", "name"),
    [
        ("Reputation.BounceRate", 0.04, None),
        ("Reputation.ComplaintRate", 0.0008, None),
        ("Reputation.BounceRate", 0.045, "nurture-ses-bounce-rate-pause"),
        ("Reputation.ComplaintRate", 0.0009, "nurture-ses-complaint-rate-pause"),
    ],
)
def test_ses_reputation_alarms_warn_and_pause_below_aws_s_review_levels(
    resources: dict[str, Any], metric: str, threshold: float, name: str | None
) -> None:
    [alarm] = [
        a for a in _alarms(resources) if a["MetricName"] == metric and a["Threshold"] == pytest.approx(threshold)
    ]

    assert alarm["Namespace"] == "AWS/SES"
    assert "Dimensions" not in alarm  # the account's rate, which AWS reviews
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm.get("AlarmName") == name
    # AWS reviews an account at 5% bounces or 0.1% complaints: every level here is below that
    assert threshold < {"Reputation.BounceRate": 0.05, "Reputation.ComplaintRate": 0.001}[metric]
    # published now and then: between datapoints, an alarm keeps its state instead of flapping to OK
    assert alarm["TreatMissingData"] == "ignore"


def test_the_pause_levels_are_above_the_warnings() -> None:
    assert monitoring.BOUNCE_RATE_WARNING < monitoring.BOUNCE_RATE_PAUSE < monitoring.BOUNCE_RATE_REVIEW
    assert monitoring.COMPLAINT_RATE_WARNING < monitoring.COMPLAINT_RATE_PAUSE < monitoring.COMPLAINT_RATE_REVIEW


# --- the dashboard ----------------------------------------------------------------------------------------------
PACKAGE = ROOT / "layers" / "nurture" / "python" / "nurture"


def _dashboard(resources: dict[str, Any]) -> dict[str, Any]:
    [body] = [r["Properties"]["DashboardBody"] for r in resources.values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    # Tokens (the region, alarm ARNs) stand as placeholders: what matters here is the metrics the widgets name.
    text = "".join(part if isinstance(part, str) else "TOKEN" for part in body["Fn::Join"][1])
    dashboard: dict[str, Any] = json.loads(text)
    return dashboard


def _graphed(resources: dict[str, Any]) -> list[tuple[str, str]]:
    """(namespace, metric name) of every line of every graph."""
    return [
        (line[0], line[1])
        for widget in _dashboard(resources)["widgets"]
        if widget["type"] == "metric"
        for line in widget["properties"]["metrics"]
    ]


def _emitted(package: Path = PACKAGE, functions: Path = ROOT / "functions") -> set[str]:
    """Metrics some handler emits: `Metric.X` named in the code shipped to Lambda, outside the enum's own module."""
    shipped = [p for p in package.rglob("*.py") if p.name != "observability.py" and "tools" not in p.parts]
    texts = [path.read_text() for path in [*shipped, *functions.rglob("*.py")]]
    named = {Metric[name].value for text in texts for name in re.findall(r"\bMetric\.([A-Z_]+)\b", text)}
    # A metric named by a prefix and a computed part (`Metric(f"Entered{stage}")`): every member with the prefix.
    prefixes = {prefix for text in texts for prefix in re.findall(r"\bMetric\(f[\"']([A-Za-z]+)\{", text)}
    return named | {m.value for m in Metric if any(m.value.startswith(prefix) for prefix in prefixes)}


def test_a_metric_only_the_enum_or_the_tools_name_counts_as_not_emitted(tmp_path: Path) -> None:
    # Given a package whose enum lists two metrics, a pipeline module that counts one, and a tool naming the other
    (tmp_path / "runtime").mkdir()
    (tmp_path / "runtime" / "observability.py").write_text("EMAILS_SENT = 'EmailsSent'\nBROKEN_EMAILS = '...'\n")
    (tmp_path / "pipeline").mkdir()
    (tmp_path / "pipeline" / "send.py").write_text("count(Metric.EMAILS_SENT)\n")
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "report.py").write_text("Metric.BROKEN_EMAILS\n")
    # And a module counting a metric named from the stage entered
    (tmp_path / "pipeline" / "leads.py").write_text('count(Metric(f"Entered{stage}"))\n')

    # Then only the counted ones are emitted
    entered = {m.value for m in Metric if m.value.startswith("Entered")}
    assert _emitted(tmp_path, tmp_path / "no-functions") == {"EmailsSent", *entered}


def test_the_dashboard_graphs_only_metrics_some_handler_emits(resources: dict[str, Any]) -> None:
    ours = {name for namespace, name in _graphed(resources) if namespace == c.METRICS_NAMESPACE}

    assert ours, "the dashboard graphs none of the engine's metrics"
    assert ours - {m.value for m in Metric} == set(), "not in runtime.observability.Metric"
    assert ours - _emitted() == set(), "in the enum, but no handler emits it: the line would stay empty"


@pytest.mark.parametrize(
    "metric",
    [
        Metric.MESSAGES_ACCEPTED,  # events ingested
        Metric.MESSAGES_REJECTED,  # and rejected
        Metric.STAGE_TRANSITIONS,
        Metric.EMAILS_SENT,
        Metric.SALES_ALERTS,
        Metric.AUTOMATED_EMAIL_EVENTS,  # scanner clicks
        Metric.TRANSIENT_BOUNCES,
        Metric.BROKEN_EMAILS,
        Metric.CONTENT_REJECTED,
        Metric.OLDEST_DUE_SECONDS,  # dispatcher lag
    ],
)
def test_the_dashboard_shows_what_operators_watch(resources: dict[str, Any], metric: Metric) -> None:
    assert (c.METRICS_NAMESPACE, metric.value) in _graphed(resources)


def test_the_dashboard_shows_transitions_by_the_stage_entered(resources: dict[str, Any]) -> None:
    entered = {m.value for m in Metric if m.value.startswith(monitoring.STAGE_ENTERED_PREFIX)}

    assert entered, "no per-stage transition metric in the enum"
    assert entered <= {name for _, name in _graphed(resources)}


@pytest.mark.parametrize(
    "metric",
    ["Bounce", "Complaint", "Reputation.BounceRate", "Reputation.ComplaintRate"],
)
def test_the_dashboard_shows_ses_bounces_complaints_and_reputation(resources: dict[str, Any], metric: str) -> None:
    assert ("AWS/SES", metric) in _graphed(resources)


def test_the_dashboard_shows_every_dead_letter_queue(resources: dict[str, Any], stack: NurtureStack) -> None:
    dead_letters = [line for line in _graphed(resources) if line == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")]

    assert len(dead_letters) == len(stack.monitoring.dead_letter_queues) == 6
