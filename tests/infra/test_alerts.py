"""The sales handoff in CDK: Sales Alert events reach the alerts function through a queue with a DLQ, and the
function may do exactly its job (owners, delivery records, the sales topic, the bus, the Slack webhook secret)."""

from __future__ import annotations

import json
from typing import Any

from infra.constructs.storage import IDEMPOTENCY_ACTIONS
from infra.stack import NurtureStack
from nurture import constants as c
from nurture.tools.local.resources import alerts_event_pattern
from tests.infra.support import actions_on, allowed, logical_id, statements_of_role


def _arn(construct: Any) -> str:
    return f"<{logical_id(construct)}.Arn>"


def _resource(resources: dict[str, Any], construct: Any) -> dict[str, Any]:
    properties: dict[str, Any] = resources[logical_id(construct)]["Properties"]
    return properties


def test_sales_alerts_on_the_bus_reach_the_alerts_queue_as_nurture_local_routes_them(
    resources: dict[str, Any], stack: NurtureStack
) -> None:
    [rule] = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::Events::Rule" and r["Properties"].get("EventPattern") == alerts_event_pattern()
    ]
    assert rule["EventBusName"] == {"Ref": logical_id(stack.bus.event_bus)}
    [target] = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [logical_id(stack.alerts.queue), "Arn"]}
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": [logical_id(stack.alerts.dlq), "Arn"]}


def test_an_alert_that_keeps_failing_goes_to_the_alerts_dlq_after_as_many_tries_as_locally(
    resources: dict[str, Any], stack: NurtureStack
) -> None:
    queue = _resource(resources, stack.alerts.queue)
    assert queue["RedrivePolicy"]["maxReceiveCount"] == c.ALERTS_MAX_RECEIVE_COUNT
    assert queue["QueueName"] == c.ALERTS_QUEUE
    [mapping] = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
        and r["Properties"]["FunctionName"] == {"Ref": logical_id(stack.alerts.function)}
    ]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] == c.ALERTS_BATCH_SIZE


def test_the_alerts_dlq_alarms_on_the_first_message(resources: dict[str, Any], stack: NurtureStack) -> None:
    dimension = {"Name": "QueueName", "Value": {"Fn::GetAtt": [logical_id(stack.alerts.dlq), "QueueName"]}}
    alarms = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"].get("Dimensions") == [dimension]
    ]
    assert [a["Threshold"] for a in alarms] == [1]


def test_the_slack_webhook_secret_is_created_empty_and_reaches_the_function_by_arn(
    resources: dict[str, Any], stack: NurtureStack
) -> None:
    secret = _resource(resources, stack.alerts.slack_webhook)
    assert json.loads(secret["SecretString"]) == {"webhook_url": ""}
    environment = _resource(resources, stack.alerts.function)["Environment"]["Variables"]
    assert environment[c.ENV_SLACK_WEBHOOK_SECRET] == {"Ref": logical_id(stack.alerts.slack_webhook)}
    assert environment[c.ENV_ALERTS_TOPIC_ARN] == {"Ref": logical_id(stack.alerts.topic)}


def test_the_alerts_function_may_only_assign_owners_record_deliveries_and_publish_the_alert(
    template_json: dict[str, Any], stack: NurtureStack
) -> None:
    statements = statements_of_role(template_json, logical_id(stack.alerts.handler.role))
    grants = allowed(statements)
    leads, idempotency = _arn(stack.storage.leads_table), _arn(stack.storage.idempotency_table)

    expected = {action: {leads} for action in ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem")}
    for action in IDEMPOTENCY_ACTIONS:
        expected.setdefault(action, set()).add(idempotency)
    assert actions_on(statements, "dynamodb:") == expected
    assert grants["sns:Publish"] == {f"<{logical_id(stack.alerts.topic)}>"}
    assert grants["events:PutEvents"] == {_arn(stack.bus.event_bus)}
    assert grants["secretsmanager:GetSecretValue"] == {f"<{logical_id(stack.alerts.slack_webhook)}>"}
    programme = f"{_arn(stack.content.bucket)}/{c.CONTENT_PROGRAMME_KEY}"
    assert actions_on(statements, "s3:") == {"s3:GetObject": {programme}}
    assert "ses:SendEmail" not in grants
    assert [action for action in grants if "*" in action] == []
