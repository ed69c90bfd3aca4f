"""What docs/infrastructure.md promises about the tables themselves, beyond the ports.

The store contract (test_stores.py) holds the adapters to the ports' promises and never looks at items. An
operator does: they query the events table for a message as Segment sent it, read a send record's subject, and
rely on the dispatcher and the sender reading a lead as last written ("the dispatcher and the email lookup
read the lead item itself (consistently) before acting on it"), so an email never goes to a lead who just
opted out. moto reads are always consistent, so the last promise is checked on the requests themselves.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from nurture import constants as c
from nurture.adapters.dynamodb import EventTable, LeadTable
from nurture.domain.journey import Lead
from nurture.domain.messages import LeadTraits
from nurture.domain.programme import Stage
from nurture.pipeline.ingest import read_messages
from nurture.pipeline.ports import SentRecord, StoredLead
from tests.contract.conftest import moto_dynamodb
from tests.support import T0


class Recording:
    """A DynamoDB client that passes every call on and remembers each call's name and arguments."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute) or name == "get_paginator":
            return attribute

        def call(**kwargs: Any) -> Any:
            self.calls.append((name, kwargs))
            return attribute(**kwargs)

        return call


@pytest.fixture
def client(dummy_aws: None) -> Iterator[Any]:
    with moto_dynamodb() as client:
        yield client


def test_an_events_item_holds_the_message_as_segment_sent_it(client: Any) -> None:
    # Given an identify message accepted by the API, with a few of the traits the engine knows
    body = {
        "type": "identify",
        "userId": "u-ada",
        "messageId": "m-1",
        "timestamp": "2026-01-05T09:00:00Z",
        "context": {"ip": "203.0.113.9"},
        "traits": {"email": "ada@northwind.example", "company": "Northwind"},
    }
    [accepted] = read_messages(body, "identify", T0).accepted
    # When it is stored
    assert EventTable(client, c.EVENTS_TABLE).put(accepted)
    # Then the item has the documented attributes, and `message` is the message as accepted: Segment's field
    # names (messageId, userId), and no field or trait the client did not send
    key = {c.EVENTS_PK: {"S": "u#u-ada"}, c.EVENTS_SK: {"S": "m-1"}}
    item = client.get_item(TableName=c.EVENTS_TABLE, Key=key)["Item"]
    assert set(item) == {c.EVENTS_PK, c.EVENTS_SK, c.EVENTS_TTL_ATTRIBUTE, "type", "received_at", "message"}
    assert item["type"] == {"S": "identify"}
    assert item["received_at"] == {"S": "2026-01-05T10:00:00.000000Z"}
    assert json.loads(item["message"]["S"]) == body


def test_a_send_record_holds_the_subject_the_lead_received(client: Any) -> None:
    # Given an email the sender delivered
    record = SentRecord(
        lead_id="ada",
        sequence=Stage.AWARENESS,
        content_id="awareness-1",
        subject="Welcome to Northstar",
        sent_at=T0,
        provider_id="ses-1",
    )
    # When it is recorded
    LeadTable(client, c.LEADS_TABLE).record_send(record)
    # Then the send record has the documented attributes: subject, sent_at, the SES message id and the A/B variant
    key = {c.LEADS_PK: {"S": "LEAD#ada"}, c.LEADS_SK: {"S": "SEND#awareness#awareness-1"}}
    item = client.get_item(TableName=c.LEADS_TABLE, Key=key)["Item"]
    assert {name: next(iter(value.values())) for name, value in item.items() if name not in key} == {
        "subject": "Welcome to Northstar",
        "sent_at": "2026-01-05T10:00:00.000000Z",
        "provider_id": "ses-1",
        "variant": "0",
    }


def test_a_lead_and_its_links_are_read_as_last_written(client: Any) -> None:
    # Given a lead with a profile link
    recording = Recording(client)
    table = LeadTable(recording, c.LEADS_TABLE)
    lead = Lead(lead_id="ada", traits=LeadTraits(email="ada@northwind.example"))
    table.save(StoredLead(lead=lead, version=1, profiles=frozenset({"u#ada"})), None, frozenset({"u#ada"}))
    recording.calls.clear()
    # When the lead is read by id, by email, and through its profile link
    assert table.get("ada") is not None
    assert table.find_by_email("ada@northwind.example") is not None
    assert table.leads_for(["u#ada"]) == {"u#ada": "ada"}
    # Then every read of the lead item or of a link is strongly consistent: a stale read could act on a lead
    # as it was before an opt-out (the by-email index itself cannot be read consistently, so it is not asked)
    reads = [
        kwargs.get("ConsistentRead") if name == "get_item" else kwargs["RequestItems"][c.LEADS_TABLE]["ConsistentRead"]
        for name, kwargs in recording.calls
        if name in ("get_item", "batch_get_item")
    ]
    assert reads == [True, True, True]
