"""Alarms: a message in a dead-letter queue, a Lambda error, or a scorer falling behind its stream."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Template

from infra.stack import NurtureStack
from tests.infra.support import logical_id


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
