"""SES feedback on AWS: the configuration set publishes to the default bus, a rule queues this stack's records, and the
email-events Lambda reads the queue (partial failures, DLQ) with exactly the grants it needs."""

from __future__ import annotations

from typing import Any

from aws_cdk.assertions import Template

from infra.constructs.email_events import TIMEOUT
from infra.stack import NurtureStack
from nurture import constants as c
from nurture.domain.email_feedback import record_pattern
from tests.infra.support import actions_on, logical_id, statements_of_role


def _of_type(resources: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r["Properties"] for r in resources.values() if r["Type"] == kind]


def _arn(construct: Any) -> str:
    return f"<{logical_id(construct)}.Arn>"


def test_the_configuration_set_publishes_every_kind_of_feedback_to_the_default_bus(
    resources: dict[str, Any], stack: NurtureStack
) -> None:
    [destination] = _of_type(resources, "AWS::SES::ConfigurationSetEventDestination")
    assert destination["ConfigurationSetName"] == {"Ref": logical_id(stack.dispatch.configuration_set)}
    published = destination["EventDestination"]
    assert published["Enabled"] is True
    assert sorted(published["MatchingEventTypes"]) == ["bounce", "click", "complaint", "delivery", "open", "reject"]
    bus = published["EventBridgeDestination"]["EventBusArn"]
    assert bus["Fn::Join"][1][-1] == ":event-bus/default"


def test_a_rule_queues_the_records_of_this_configuration_set_only(
    resources: dict[str, Any], stack: NurtureStack
) -> None:
    rule = resources[logical_id(stack.email_events.rule)]["Properties"]
    # The pattern `nurture local` uses too: the same records reach the function there
    assert rule["EventPattern"] == record_pattern(c.SES_CONFIGURATION_SET)
    assert rule.get("EventBusName", "default") == "default"  # the only bus SES publishes to
    [target] = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [logical_id(stack.email_events.queue), "Arn"]}
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": [logical_id(stack.email_events.dlq), "Arn"]}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0


def test_the_queue_outlasts_six_timeouts_and_dead_letters_what_keeps_failing(
    resources: dict[str, Any], stack: NurtureStack
) -> None:
    queue = resources[logical_id(stack.email_events.queue)]["Properties"]
    dlq = resources[logical_id(stack.email_events.dlq)]["Properties"]
    assert queue["QueueName"] == c.EMAIL_EVENTS_QUEUE
    assert queue["VisibilityTimeout"] >= 6 * TIMEOUT.to_seconds()
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [logical_id(stack.email_events.dlq), "Arn"]},
        "maxReceiveCount": c.EMAIL_EVENTS_MAX_RECEIVE_COUNT,
    }
    assert dlq["QueueName"] == c.EMAIL_EVENTS_DLQ
    assert queue["SqsManagedSseEnabled"] is True
    assert dlq["SqsManagedSseEnabled"] is True


def test_only_the_email_events_queue_may_be_sent_to_by_its_rule(template: Template, stack: NurtureStack) -> None:
    policies = template.find_resources("AWS::SQS::QueuePolicy")
    queue_id = logical_id(stack.email_events.queue)
    [policy] = [p for p in policies.values() if {"Ref": queue_id} in p["Properties"]["Queues"]]
    [send] = [
        s
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Allow" and "sqs:SendMessage" in s["Action"]
    ]
    assert send["Principal"] == {"Service": "events.amazonaws.com"}
    assert send["Condition"]["ArnEquals"]["aws:SourceArn"] == {
        "Fn::GetAtt": [logical_id(stack.email_events.rule), "Arn"]
    }


def test_the_function_reads_the_queue_in_batches_and_reports_partial_failures(
    resources: dict[str, Any], stack: NurtureStack
) -> None:
    function_id = logical_id(stack.email_events.function)
    [mapping] = [
        m for m in _of_type(resources, "AWS::Lambda::EventSourceMapping") if m["FunctionName"] == {"Ref": function_id}
    ]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [logical_id(stack.email_events.queue), "Arn"]}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] == c.EMAIL_EVENTS_BATCH_SIZE
    # A scanner's burst arrives within seconds: waiting a moment puts it in one batch, judged as a whole
    assert mapping["MaximumBatchingWindowInSeconds"] >= 1
    assert resources[function_id]["Properties"]["Handler"] == "handler.handler"


def test_the_function_reads_leads_notes_emails_and_stores_events_nothing_more(
    template_json: dict[str, Any], stack: NurtureStack
) -> None:
    statements = statements_of_role(template_json, logical_id(stack.email_events.handler.role))
    leads, events = _arn(stack.storage.leads_table), _arn(stack.storage.events_table)
    assert actions_on(statements, "dynamodb:") == {
        "dynamodb:GetItem": {leads},
        # the mail log (its own items of the lead's partition) and the by-email index (an untagged email)
        "dynamodb:Query": {leads, f"{leads}/index/{c.LEADS_BY_EMAIL_INDEX}"},
        "dynamodb:PutItem": {leads, events},
    }
    assert actions_on(statements, "s3:") == {
        "s3:GetObject": {f"{_arn(stack.content.bucket)}/{c.CONTENT_PROGRAMME_KEY}"}
    }
    for service in ("ses:", "sns:", "secretsmanager:", "events:", "dynamodb:DeleteItem", "dynamodb:UpdateItem"):
        assert actions_on(statements, service) == {}
    assert set(actions_on(statements, "sqs:")) == {
        "sqs:ReceiveMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueUrl",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
    }


def test_what_the_function_keeps_per_email_expires_from_the_leads_table(
    resources: dict[str, Any], stack: NurtureStack
) -> None:
    leads = resources[logical_id(stack.storage.leads_table)]["Properties"]
    assert leads["TimeToLiveSpecification"] == {"AttributeName": c.LEADS_TTL_ATTRIBUTE, "Enabled": True}


def test_a_record_in_the_email_events_dlq_raises_an_alarm(resources: dict[str, Any], stack: NurtureStack) -> None:
    dimension = {"Name": "QueueName", "Value": {"Fn::GetAtt": [logical_id(stack.email_events.dlq), "QueueName"]}}
    [alarm] = [a for a in _of_type(resources, "AWS::CloudWatch::Alarm") if a.get("Dimensions") == [dimension]]
    assert alarm["Threshold"] == 1


def test_the_function_alarms_on_errors_and_gets_the_shared_settings(
    resources: dict[str, Any], stack: NurtureStack
) -> None:
    function_id = logical_id(stack.email_events.function)
    errors = [
        a
        for a in _of_type(resources, "AWS::CloudWatch::Alarm")
        if a.get("MetricName") == "Errors"
        and a.get("Dimensions") == [{"Name": "FunctionName", "Value": {"Ref": function_id}}]
    ]
    assert len(errors) == 1
    variables = resources[function_id]["Properties"]["Environment"]["Variables"]
    assert variables[c.ENV_LEADS_TABLE] == {"Ref": logical_id(stack.storage.leads_table)}
    assert variables[c.ENV_EVENTS_TABLE] == {"Ref": logical_id(stack.storage.events_table)}
