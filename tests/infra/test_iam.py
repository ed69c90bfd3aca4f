"""Least privilege: each function may do exactly its job, on exactly its resources."""

from __future__ import annotations

from typing import Any

import pytest

from infra.stack import NurtureStack
from nurture import constants as c
from tests.infra.conftest import FROM_ADDRESS
from tests.infra.support import Statement, actions_on, allowed, logical_id, statements_of_role

FUNCTIONS = ("ingest", "scorer", "dispatcher", "sender", "content_check")
# The only actions allowed on "*": none of them supports resource-level permissions.
NO_RESOURCE_LEVEL_PERMISSIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "dynamodb:ListStreams"}
SES_ARN = "arn:<AWS::Partition>:ses:<AWS::Region>:<AWS::AccountId>"


def _statements(template_json: dict[str, Any], stack: NurtureStack, name: str) -> list[Statement]:
    return statements_of_role(template_json, logical_id(stack.functions[name].role))


def _arn(construct: Any) -> str:
    return f"<{logical_id(construct)}.Arn>"


def _object(stack: NurtureStack, key: str) -> str:
    return f"{_arn(stack.content.bucket)}/{key}"


def _index(stack: NurtureStack, index_name: str) -> str:
    return f"{_arn(stack.storage.leads_table)}/index/{index_name}"


def test_ingest_can_only_put_events_read_leads_and_erase_them(
    template_json: dict[str, Any], stack: NurtureStack
) -> None:
    statements = _statements(template_json, stack, "ingest")
    events, leads = _arn(stack.storage.events_table), _arn(stack.storage.leads_table)

    assert actions_on(statements, "dynamodb:") == {
        "dynamodb:GetItem": {leads},
        # the by-email index (find_by_email), the leads table (send_records, a lead's partition to erase) and the
        # events of an erased lead's profiles, never another index
        "dynamodb:Query": {_index(stack, c.LEADS_BY_EMAIL_INDEX), leads, events},
        # erasure (DELETE /v1/leads/{lead_id}): events in batches; a lead's items, links and its emails'
        # idempotency records one by one
        "dynamodb:BatchWriteItem": {events},
        "dynamodb:DeleteItem": {leads, _arn(stack.storage.idempotency_table)},
        "dynamodb:BatchGetItem": {leads},
        # events stored; sales feedback (the lead written at its version, its outbox cleared); the erasure counts
        "dynamodb:PutItem": {events, leads},
        "dynamodb:UpdateItem": {leads},
    }
    assert actions_on(statements, "s3:") == {"s3:GetObject": {_object(stack, c.CONTENT_PROGRAMME_KEY)}}
    # the write keys, and the key that verifies unsubscribe links
    secrets = {f"<{logical_id(stack.ingest.write_keys)}>", f"<{logical_id(stack.dispatch.unsubscribe_signing_key)}>"}
    assert actions_on(statements, "secretsmanager:") == {
        "secretsmanager:GetSecretValue": secrets,
        "secretsmanager:DescribeSecret": secrets,
    }


def test_ingest_writes_only_leads_own_items_and_the_anonymous_erasure_counts(
    template_json: dict[str, Any], stack: NurtureStack
) -> None:
    leads = _arn(stack.storage.leads_table)
    writes = [
        (s.actions, s.condition)
        for s in _statements(template_json, stack, "ingest")
        if {"dynamodb:UpdateItem", "dynamodb:PutItem"} & s.actions and leads in s.resources
    ]
    assert sorted(writes, key=repr) == sorted(
        [
            (
                frozenset({"dynamodb:UpdateItem"}),
                {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [c.LEADS_ERASURES_PK]}},
            ),
            # sales feedback: never a profile link, the routing counter or another partition
            (
                frozenset({"dynamodb:PutItem", "dynamodb:UpdateItem"}),
                {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["LEAD#*", "METRICS#*"]}},
            ),
        ],
        key=repr,
    )


def test_ingest_announces_what_sales_said_on_the_bus(template_json: dict[str, Any], stack: NurtureStack) -> None:
    assert allowed(_statements(template_json, stack, "ingest"))["events:PutEvents"] == {_arn(stack.bus.event_bus)}


def test_scorer_reads_the_stream_and_events_and_writes_only_leads(
    template_json: dict[str, Any], stack: NurtureStack
) -> None:
    grants = actions_on(_statements(template_json, stack, "scorer"), "dynamodb:")
    events, leads = _arn(stack.storage.events_table), _arn(stack.storage.leads_table)
    stream = f"<{logical_id(stack.storage.events_table)}.StreamArn>"

    assert grants == {
        "dynamodb:DescribeStream": {stream},
        "dynamodb:GetRecords": {stream},
        "dynamodb:GetShardIterator": {stream},
        "dynamodb:ListStreams": {"*"},
        "dynamodb:Query": {events},
        "dynamodb:BatchGetItem": {leads},
        "dynamodb:GetItem": {leads},
        "dynamodb:PutItem": {leads},
        "dynamodb:UpdateItem": {leads},
        "dynamodb:DeleteItem": {leads},
    }


def test_scorer_publishes_changes_and_sends_and_reads_only_the_programme(
    template_json: dict[str, Any], stack: NurtureStack
) -> None:
    statements = _statements(template_json, stack, "scorer")

    assert allowed(statements)["events:PutEvents"] == {_arn(stack.bus.event_bus)}
    assert allowed(statements)["sqs:SendMessage"] == {_arn(stack.dispatch.queue), _arn(stack.scoring.dlq)}
    assert actions_on(statements, "s3:") == {"s3:GetObject": {_object(stack, c.CONTENT_PROGRAMME_KEY)}}


def test_dispatcher_can_only_query_the_due_index(template_json: dict[str, Any], stack: NurtureStack) -> None:
    statements = _statements(template_json, stack, "dispatcher")

    assert actions_on(statements, "dynamodb:") == {
        "dynamodb:Query": {_index(stack, c.LEADS_DUE_INDEX)},
        "dynamodb:GetItem": {_arn(stack.storage.leads_table)},
        "dynamodb:PutItem": {_arn(stack.storage.leads_table)},
        "dynamodb:UpdateItem": {_arn(stack.storage.leads_table)},
    }
    # the programme and the emails' front matter (topics and personas choose a lead's next email); never a write
    assert actions_on(statements, "s3:") == {
        "s3:GetObject": {_object(stack, c.CONTENT_PROGRAMME_KEY), _object(stack, f"{c.CONTENT_EMAILS_PREFIX}*")},
        "s3:ListBucket": {_arn(stack.content.bucket)},
    }


def test_dispatcher_queues_sends_and_announces_timeouts(template_json: dict[str, Any], stack: NurtureStack) -> None:
    grants = allowed(_statements(template_json, stack, "dispatcher"))

    assert grants["sqs:SendMessage"] == {_arn(stack.dispatch.queue)}
    assert "sqs:ReceiveMessage" not in grants
    assert grants["events:PutEvents"] == {_arn(stack.bus.event_bus)}


def test_sender_sends_only_through_the_configuration_set_and_identity(
    template_json: dict[str, Any], stack: NurtureStack
) -> None:
    grants = actions_on(_statements(template_json, stack, "sender"), "ses:")

    through = {
        f"{SES_ARN}:configuration-set/{c.SES_CONFIGURATION_SET}",
        f"{SES_ARN}:identity/{FROM_ADDRESS}",
        f"{SES_ARN}:identity/{FROM_ADDRESS.rpartition('@')[2]}",
    }
    # SES v2 SendEmail with raw MIME content (List-Unsubscribe headers) is authorised as ses:SendRawEmail
    assert grants == {"ses:SendEmail": through, "ses:SendRawEmail": through}


def test_only_the_sender_and_the_api_read_the_links_signing_key(
    template_json: dict[str, Any], stack: NurtureStack
) -> None:
    key = f"<{logical_id(stack.dispatch.unsubscribe_signing_key)}>"
    readers = {
        name
        for name in FUNCTIONS
        if key
        in actions_on(_statements(template_json, stack, name), "secretsmanager:").get(
            "secretsmanager:GetSecretValue", set()
        )
    }
    assert readers == {"sender", "ingest"}


def test_sender_consumes_the_queue_and_records_sends_once(template_json: dict[str, Any], stack: NurtureStack) -> None:
    statements = _statements(template_json, stack, "sender")
    leads, idempotency = _arn(stack.storage.leads_table), _arn(stack.storage.idempotency_table)

    assert actions_on(statements, "dynamodb:") == {
        "dynamodb:GetItem": {leads, idempotency},
        "dynamodb:PutItem": {leads, idempotency},
        "dynamodb:UpdateItem": {idempotency, leads},
        "dynamodb:DeleteItem": {idempotency},
    }
    # on the leads table, UpdateItem only adds to the month's metrics (each email sent, counted)
    [metrics] = [s for s in statements if "dynamodb:UpdateItem" in s.actions and leads in s.resources]
    assert metrics.condition == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["METRICS#*"]}}
    assert allowed(statements)["sqs:ReceiveMessage"] == {_arn(stack.dispatch.queue)}
    assert allowed(statements)["sqs:DeleteMessage"] == {_arn(stack.dispatch.queue)}
    assert "events:PutEvents" not in allowed(statements)


def test_sender_reads_only_emails(template_json: dict[str, Any], stack: NurtureStack) -> None:
    statements = _statements(template_json, stack, "sender")

    assert actions_on(statements, "s3:") == {
        "s3:GetObject": {_object(stack, f"{c.CONTENT_EMAILS_PREFIX}*")},
        "s3:ListBucket": {_arn(stack.content.bucket)},
    }
    [listing] = [s for s in statements if "s3:ListBucket" in s.actions]
    assert listing.condition == {"StringLike": {"s3:prefix": [c.CONTENT_EMAILS_PREFIX, f"{c.CONTENT_EMAILS_PREFIX}*"]}}


@pytest.mark.parametrize("name", FUNCTIONS)
def test_only_ingest_and_the_sender_read_a_secret(
    template_json: dict[str, Any], stack: NurtureStack, name: str
) -> None:
    secrets = allowed(_statements(template_json, stack, name)).get("secretsmanager:GetSecretValue", set())
    write_keys, signing_key = (
        f"<{logical_id(s)}>" for s in (stack.ingest.write_keys, stack.dispatch.unsubscribe_signing_key)
    )
    expected = {"ingest": {write_keys, signing_key}, "sender": {signing_key}}

    assert secrets == expected.get(name, set())


@pytest.mark.parametrize("name", FUNCTIONS)
def test_no_function_has_wildcard_actions(template_json: dict[str, Any], stack: NurtureStack, name: str) -> None:
    actions = allowed(_statements(template_json, stack, name))

    assert [action for action in actions if "*" in action] == []


@pytest.mark.parametrize("name", FUNCTIONS)
def test_only_actions_without_resource_level_permissions_use_a_wildcard_resource(
    template_json: dict[str, Any], stack: NurtureStack, name: str
) -> None:
    on_anything = {
        action for action, resources in allowed(_statements(template_json, stack, name)).items() if "*" in resources
    }

    assert on_anything <= NO_RESOURCE_LEVEL_PERMISSIONS


@pytest.mark.parametrize("name", FUNCTIONS)
def test_functions_have_their_own_role_without_managed_policies(
    template_json: dict[str, Any], stack: NurtureStack, name: str
) -> None:
    role = template_json["Resources"][logical_id(stack.functions[name].role)]["Properties"]

    assert "ManagedPolicyArns" not in role
    assert allowed(_statements(template_json, stack, name))["logs:PutLogEvents"] == {
        _arn(stack.functions[name].log_group)
    }


def test_content_check_reads_uploads_and_the_live_folder_and_writes_only_live_content(
    template_json: dict[str, Any], stack: NurtureStack
) -> None:
    statements = _statements(template_json, stack, "content_check")
    emails, incoming = f"{c.CONTENT_EMAILS_PREFIX}*", f"{c.CONTENT_INCOMING_PREFIX}*"
    live = {_object(stack, c.CONTENT_PROGRAMME_KEY), _object(stack, emails)}

    assert actions_on(statements, "s3:") == {
        "s3:GetObject": {_object(stack, incoming)} | live,
        "s3:ListBucket": {_arn(stack.content.bucket)},
        "s3:PutObject": live,  # never under incoming/: what marketers upload is theirs
        "s3:DeleteObject": live,
    }
    prefixes = sorted(s.condition["StringLike"]["s3:prefix"][0] for s in statements if "s3:ListBucket" in s.actions)
    assert prefixes == sorted([c.CONTENT_EMAILS_PREFIX, c.CONTENT_INCOMING_PREFIX])
    assert allowed(statements)["sns:Publish"] == {f"<{logical_id(stack.content_check.topic)}>"}
    assert allowed(statements)["sqs:SendMessage"] == {_arn(stack.content_check.dlq)}
    assert "dynamodb:GetItem" not in allowed(statements)
