"""The four Lambdas: one runtime recipe, the shared settings, and how each is triggered."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from infra.constructs.dispatch import SENDER_TIMEOUT
from infra.constructs.runtime import MEMORY_MB
from infra.stack import NurtureStack
from nurture import constants as c
from nurture.runtime.settings import REQUIRED
from tests.infra.conftest import ALLOWED_ORIGINS, FROM_ADDRESS
from tests.infra.support import logical_id, render

FUNCTIONS = ("ingest", "scorer", "dispatcher", "sender", "content_check")


def _function(resources: dict[str, Any], stack: NurtureStack, name: str) -> Any:
    return resources[logical_id(stack.functions[name].function)]["Properties"]


def _event_source(resources: dict[str, Any], stack: NurtureStack, name: str) -> Any:
    function_id = logical_id(stack.functions[name].function)
    [mapping] = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping" and r["Properties"]["FunctionName"] == {"Ref": function_id}
    ]
    return mapping


@pytest.mark.parametrize("name", FUNCTIONS)
def test_every_function_runs_python312_on_arm64_with_the_shared_layer(
    resources: dict[str, Any], stack: NurtureStack, name: str
) -> None:
    function = _function(resources, stack, name)

    assert function["Runtime"] == "python3.12"
    assert function["Architectures"] == ["arm64"]
    assert function["Handler"] == "handler.handler"
    assert function["MemorySize"] == MEMORY_MB
    assert function["TracingConfig"] == {"Mode": "Active"}
    [layer] = function["Layers"]
    assert resources[layer["Ref"]]["Type"] == "AWS::Lambda::LayerVersion"


@pytest.mark.parametrize("name", FUNCTIONS)
def test_every_function_reads_the_shared_settings_from_the_environment(
    resources: dict[str, Any], stack: NurtureStack, name: str
) -> None:
    variables = _function(resources, stack, name)["Environment"]["Variables"]

    assert variables["POWERTOOLS_SERVICE_NAME"] == c.SERVICE_NAME
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == c.METRICS_NAMESPACE
    assert variables[c.ENV_EVENTS_TABLE] == {"Ref": logical_id(stack.storage.events_table)}
    assert variables[c.ENV_LEADS_TABLE] == {"Ref": logical_id(stack.storage.leads_table)}
    assert variables[c.ENV_IDEMPOTENCY_TABLE] == {"Ref": logical_id(stack.storage.idempotency_table)}
    assert variables[c.ENV_CONTENT_BUCKET] == {"Ref": logical_id(stack.content.bucket)}
    assert variables[c.ENV_EVENT_BUS] == {"Ref": logical_id(stack.bus.event_bus)}
    assert variables[c.ENV_SEND_QUEUE_URL] == {"Ref": logical_id(stack.dispatch.queue)}
    assert variables[c.ENV_SES_CONFIGURATION_SET] == {"Ref": logical_id(stack.dispatch.configuration_set)}
    assert variables[c.ENV_FROM_ADDRESS] == FROM_ADDRESS
    assert variables[c.ENV_ALLOWED_ORIGINS] == ",".join(ALLOWED_ORIGINS)
    assert variables[c.ENV_DUE_SHARDS] == str(c.DUE_SHARDS)
    # links in emails point at the HTTP API itself
    assert logical_id(stack.ingest.api) in render(variables[c.ENV_PUBLIC_URL])


@pytest.mark.parametrize("name", FUNCTIONS)
def test_every_function_gets_every_variable_the_settings_model_requires(
    resources: dict[str, Any], stack: NurtureStack, name: str
) -> None:
    variables = _function(resources, stack, name)["Environment"]["Variables"]

    assert set(REQUIRED) - set(variables) == set()  # or the function fails at cold start


@pytest.mark.parametrize("name", FUNCTIONS)
def test_secrets_reach_functions_by_arn_only(resources: dict[str, Any], stack: NurtureStack, name: str) -> None:
    variables = _function(resources, stack, name)["Environment"]["Variables"]

    assert variables[c.ENV_WRITE_KEYS_SECRET] == {"Ref": logical_id(stack.ingest.write_keys)}
    assert variables[c.ENV_SIGNING_KEY_SECRET] == {"Ref": logical_id(stack.dispatch.unsubscribe_signing_key)}
    assert not any("resolve:secretsmanager" in render(value) for value in variables.values())


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_logs_go_to_their_own_group_kept_for_a_month(
    resources: dict[str, Any], stack: NurtureStack, name: str
) -> None:
    log_group_id = _function(resources, stack, name)["LoggingConfig"]["LogGroup"]["Ref"]

    assert resources[log_group_id]["Properties"]["RetentionInDays"] == 30


def test_scorer_reports_partial_batch_failures_and_bisects(resources: dict[str, Any], stack: NurtureStack) -> None:
    mapping = _event_source(resources, stack, "scorer")

    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [logical_id(stack.storage.events_table), "StreamArn"]}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["MaximumRetryAttempts"] == 5
    assert mapping["BatchSize"] == 100
    assert mapping["StartingPosition"] == "TRIM_HORIZON"
    assert 0 < mapping["MaximumRecordAgeInSeconds"] <= 24 * 3600


def test_scorer_sends_records_it_gives_up_on_to_its_dlq(resources: dict[str, Any], stack: NurtureStack) -> None:
    mapping = _event_source(resources, stack, "scorer")

    assert mapping["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": [logical_id(stack.scoring.dlq), "Arn"]
    }
    assert resources[logical_id(stack.scoring.dlq)]["Properties"]["QueueName"] == c.SCORER_DLQ


def test_scorer_sees_only_new_events_not_ttl_expiry(resources: dict[str, Any], stack: NurtureStack) -> None:
    mapping = _event_source(resources, stack, "scorer")

    assert mapping["FilterCriteria"] == {"Filters": [{"Pattern": '{"eventName":["INSERT"]}'}]}


def test_sender_reports_partial_batch_failures(resources: dict[str, Any], stack: NurtureStack) -> None:
    mapping = _event_source(resources, stack, "sender")

    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [logical_id(stack.dispatch.queue), "Arn"]}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_send_queue_outlasts_six_sender_timeouts_and_dead_letters_after_three_receives(
    resources: dict[str, Any], stack: NurtureStack
) -> None:
    queue = resources[logical_id(stack.dispatch.queue)]["Properties"]

    assert queue["QueueName"] == c.SEND_QUEUE
    assert queue["VisibilityTimeout"] >= 6 * SENDER_TIMEOUT.to_seconds()
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [logical_id(stack.dispatch.dlq), "Arn"]},
        "maxReceiveCount": 3,
    }
    assert resources[logical_id(stack.dispatch.dlq)]["Properties"]["QueueName"] == c.SEND_DLQ


@pytest.mark.parametrize("writer", ["scorer", "dispatcher"])
def test_an_outbox_lease_outlasts_each_lead_writer(resources: dict[str, Any], stack: NurtureStack, writer: str) -> None:
    # An unpublished effect is taken over after its lease: never while the writer that saved it may still run
    assert _function(resources, stack, writer)["Timeout"] < c.OUTBOX_LEASE_SECONDS


@pytest.mark.parametrize("queue", ["send queue", "send dlq", "scorer dlq"])
def test_queues_are_encrypted_and_refuse_plain_http(
    template: Template, resources: dict[str, Any], stack: NurtureStack, queue: str
) -> None:
    construct = {"send queue": stack.dispatch.queue, "send dlq": stack.dispatch.dlq, "scorer dlq": stack.scoring.dlq}
    queue_id = logical_id(construct[queue])

    assert resources[queue_id]["Properties"]["SqsManagedSseEnabled"] is True
    template.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "Queues": [{"Ref": queue_id}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})]
                )
            },
        },
    )


def test_dispatcher_ticks_every_dispatch_interval(template: Template, stack: NurtureStack) -> None:
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "ScheduleExpression": f"rate({c.DISPATCH_SCHEDULE_MINUTES} minutes)",
            "Targets": [
                Match.object_like({"Arn": {"Fn::GetAtt": [logical_id(stack.dispatch.dispatcher.function), "Arn"]}})
            ],
        },
    )


def test_a_failed_dispatcher_tick_is_left_to_the_next_tick(template: Template, stack: NurtureStack) -> None:
    template.has_resource_properties(
        "AWS::Lambda::EventInvokeConfig",
        {"FunctionName": {"Ref": logical_id(stack.dispatch.dispatcher.function)}, "MaximumRetryAttempts": 0},
    )


def test_ses_configuration_set_requires_tls_and_suppresses_bounces(template: Template) -> None:
    template.has_resource_properties(
        "AWS::SES::ConfigurationSet",
        {
            "Name": c.SES_CONFIGURATION_SET,
            "DeliveryOptions": {"TlsPolicy": "REQUIRE"},
            "SuppressionOptions": {"SuppressedReasons": ["BOUNCE", "COMPLAINT"]},
        },
    )


def test_event_bus_is_named_from_constants(template: Template) -> None:
    template.has_resource_properties("AWS::Events::EventBus", {"Name": c.EVENT_BUS})
