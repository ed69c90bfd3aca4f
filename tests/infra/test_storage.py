"""DynamoDB: the events table is the source of truth, the leads table its projection."""

from __future__ import annotations

from typing import Any

import pytest

from infra.constructs.storage import IDEMPOTENCY_KEY_ATTRIBUTE, IDEMPOTENCY_TTL_ATTRIBUTE
from infra.stack import NurtureStack
from nurture import constants as c
from tests.infra.support import logical_id


def _table(resources: dict[str, Any], table_name: str) -> Any:
    [table] = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::DynamoDB::Table" and r["Properties"].get("TableName") == table_name
    ]
    return table


def _string_keys(partition: str, sort: str | None = None) -> list[dict[str, str]]:
    keys = [{"AttributeName": partition, "KeyType": "HASH"}]
    return keys + ([{"AttributeName": sort, "KeyType": "RANGE"}] if sort else [])


def test_events_table_expires_raw_events(resources: dict[str, Any]) -> None:
    events = _table(resources, c.EVENTS_TABLE)

    assert events["TimeToLiveSpecification"] == {"AttributeName": c.EVENTS_TTL_ATTRIBUTE, "Enabled": True}


def test_events_table_streams_new_events_keyed_by_profile_and_message(resources: dict[str, Any]) -> None:
    events = _table(resources, c.EVENTS_TABLE)

    assert events["KeySchema"] == _string_keys(c.EVENTS_PK, c.EVENTS_SK)
    assert events["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}


@pytest.mark.parametrize("table_name", [c.EVENTS_TABLE, c.LEADS_TABLE, c.IDEMPOTENCY_TABLE])
def test_tables_are_on_demand_encrypted_and_recoverable(resources: dict[str, Any], table_name: str) -> None:
    table = _table(resources, table_name)

    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


def test_leads_table_finds_leads_by_email_and_by_due_time(resources: dict[str, Any]) -> None:
    leads = _table(resources, c.LEADS_TABLE)

    indexes = {index["IndexName"]: index["KeySchema"] for index in leads["GlobalSecondaryIndexes"]}
    assert leads["KeySchema"] == _string_keys(c.LEADS_PK, c.LEADS_SK)
    assert indexes == {
        c.LEADS_BY_EMAIL_INDEX: _string_keys(c.LEADS_EMAIL_ATTRIBUTE),
        c.LEADS_DUE_INDEX: _string_keys(c.LEADS_DUE_SHARD_ATTRIBUTE, c.LEADS_DUE_AT_ATTRIBUTE),
    }
    string_attributes = {a["AttributeName"] for a in leads["AttributeDefinitions"] if a["AttributeType"] == "S"}
    assert {c.LEADS_EMAIL_ATTRIBUTE, c.LEADS_DUE_SHARD_ATTRIBUTE, c.LEADS_DUE_AT_ATTRIBUTE} <= string_attributes


def test_lead_indexes_hold_keys_only_so_a_lead_write_is_not_copied_twice(resources: dict[str, Any]) -> None:
    # The dispatcher and the email lookup read the lead itself (consistently) before acting on it;
    # the indexes only say which leads, so projecting the lead's state would double every write.
    leads = _table(resources, c.LEADS_TABLE)

    projections = {index["IndexName"]: index["Projection"] for index in leads["GlobalSecondaryIndexes"]}
    assert projections == {
        c.LEADS_DUE_INDEX: {"ProjectionType": "KEYS_ONLY"},
        c.LEADS_BY_EMAIL_INDEX: {"ProjectionType": "KEYS_ONLY"},
    }


def test_idempotency_table_uses_the_powertools_schema(resources: dict[str, Any]) -> None:
    idempotency = _table(resources, c.IDEMPOTENCY_TABLE)

    assert idempotency["KeySchema"] == _string_keys(IDEMPOTENCY_KEY_ATTRIBUTE)
    assert idempotency["TimeToLiveSpecification"] == {"AttributeName": IDEMPOTENCY_TTL_ATTRIBUTE, "Enabled": True}


@pytest.mark.parametrize("table", ["events_table", "leads_table"])
def test_events_and_leads_survive_stack_deletion(resources: dict[str, Any], stack: NurtureStack, table: str) -> None:
    resource = resources[logical_id(getattr(stack.storage, table))]

    assert resource["DeletionPolicy"] == "Retain"
    assert resource["Properties"]["DeletionProtectionEnabled"] is True
