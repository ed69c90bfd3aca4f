"""The automatic pause of sends, as deployed: a pause alarm's state change reaches the send guard, which may turn
off sending of the one configuration set and tell operations, nothing more; the operations address is subscribed."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Template

from infra.constructs import monitoring
from infra.constructs.monitoring import Monitoring
from infra.stack import NurtureStack
from nurture import constants as c
from tests.infra.support import allowed, logical_id, statements_of_role

SES_ARN = "arn:<AWS::Partition>:ses:<AWS::Region>:<AWS::AccountId>"


def _arn(construct: Any) -> str:
    return f"<{logical_id(construct)}.Arn>"


def test_the_send_guard_may_only_pause_the_nurture_configuration_set_and_tell_operations(
    template_json: dict[str, Any], stack: NurtureStack
) -> None:
    guard = stack.monitoring.send_guard
    grants = allowed(statements_of_role(template_json, logical_id(guard.handler.role)))
    dlq, logs = _arn(guard.dlq), _arn(guard.handler.log_group)

    assert grants == {
        # the one configuration set the sender sends through; resuming is left to a person
        "ses:PutConfigurationSetSendingOptions": {
            f"{SES_ARN}:configuration-set/<{logical_id(stack.dispatch.configuration_set)}>"
        },
        # the operations topic (SNS AWS-managed key: no KMS grant needed)
        "sns:Publish": {f"<{logical_id(stack.content_check.topic)}>"},
        # an event it failed on goes to its DLQ (Lambda's on-failure destination)
        "sqs:SendMessage": {dlq},
        "sqs:GetQueueAttributes": {dlq},
        "sqs:GetQueueUrl": {dlq},
        "logs:CreateLogStream": {logs},
        "logs:PutLogEvents": {logs},
        "xray:PutTraceSegments": {"*"},
        "xray:PutTelemetryRecords": {"*"},
    }


def test_the_send_guard_is_called_only_when_a_pause_alarm_goes_into_alarm(
    resources: dict[str, Any], stack: NurtureStack
) -> None:
    guard = stack.monitoring.send_guard
    rule = resources[logical_id(guard.rule)]["Properties"]
    pause_alarms = [{"Ref": logical_id(alarm)} for alarm in stack.monitoring.pause_alarms]

    assert rule["EventPattern"] == {
        "source": ["aws.cloudwatch"],
        "detail-type": ["CloudWatch Alarm State Change"],
        "detail": {"alarmName": pause_alarms, "state": {"value": ["ALARM"]}},
    }
    assert [resources[a["Ref"]]["Properties"]["AlarmName"] for a in pause_alarms] == [
        monitoring.BOUNCE_PAUSE_ALARM,
        monitoring.COMPLAINT_PAUSE_ALARM,
    ]
    [target] = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [logical_id(guard.function), "Arn"]}
    # an event it cannot deliver is kept, and its DLQ alarms like every other
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": [logical_id(guard.dlq), "Arn"]}
    assert resources[logical_id(guard.dlq)]["Properties"]["QueueName"] == c.SEND_GUARD_DLQ
    assert stack.monitoring.dead_letter_queues["SendGuard"] is guard.dlq


def test_the_send_guard_is_a_nurture_function_with_the_shared_settings_and_the_operations_topic(
    resources: dict[str, Any], stack: NurtureStack
) -> None:
    function = resources[logical_id(stack.monitoring.send_guard.function)]["Properties"]
    variables = function["Environment"]["Variables"]

    assert stack.functions["send_guard"] is stack.monitoring.send_guard.handler
    assert function["Runtime"] == "python3.12"
    assert variables[c.ENV_OPERATIONS_TOPIC_ARN] == {"Ref": logical_id(stack.content_check.topic)}
    assert variables[c.ENV_SES_CONFIGURATION_SET] == {"Ref": logical_id(stack.dispatch.configuration_set)}


# --- the operations address (`-c operations_email=...`), on a small stack of its own ------------------------------
def _monitoring(operations_email: str | None) -> tuple[cdk.Stack, Monitoring, sns.Topic]:
    stack = cdk.Stack(cdk.App(), "Probe")
    layer = lambda_.LayerVersion.from_layer_version_arn(
        stack, "Layer", "arn:aws:lambda:eu-west-1:123456789012:layer:n:1"
    )
    function = lambda_.Function(
        stack,
        "Function",
        runtime=lambda_.Runtime.PYTHON_3_12,
        handler="index.handler",
        code=lambda_.Code.from_inline("def handler(event, context): pass"),
    )
    operations = sns.Topic(stack, "Operations")
    built = Monitoring(
        stack,
        "Monitoring",
        layer=layer,
        dead_letter_queues={"Probe": sqs.Queue(stack, "Dlq")},
        functions={"Probe": function},
        stream_consumer=function,
        operations_topic=operations,
        configuration_set_name=c.SES_CONFIGURATION_SET,
        operations_email=operations_email,
    )
    return stack, built, operations


def test_the_operations_email_hears_alarms_pauses_and_content_rejections() -> None:
    stack, built, operations = _monitoring("ops@example.com")

    subscriptions = [
        r["Properties"]
        for r in Template.from_stack(stack).to_json()["Resources"].values()
        if r["Type"] == "AWS::SNS::Subscription"
    ]
    assert sorted((s["Protocol"], s["Endpoint"], s["TopicArn"]["Ref"]) for s in subscriptions) == sorted(
        [("email", "ops@example.com", logical_id(built.topic)), ("email", "ops@example.com", logical_id(operations))]
    )


def test_an_operations_email_that_is_not_an_address_fails_the_synth() -> None:
    with pytest.raises(ValueError, match="operations_email"):
        _monitoring("ops.example.com")
