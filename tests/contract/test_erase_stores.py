"""The stores' erasure methods, one contract over the in-memory fakes and the DynamoDB adapters on moto (as
test_stores.py), plus what only the tables show: a lead's whole partition goes, and the idempotency records by key."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from nurture import constants as c
from nurture.adapters.dynamodb import EventTable, IdempotencyTable, LeadTable
from nurture.domain.journey import Lead
from nurture.domain.messages import LeadTraits
from nurture.domain.programme import Stage
from nurture.pipeline.ports import EventStore, LeadStore, SentRecord, StoredEvent, StoredLead
from tests.contract.conftest import moto_dynamodb
from tests.fakes import FakeEvents, FakeLeads
from tests.support import T0, page


@dataclass(frozen=True)
class Stores:
    events: EventStore
    leads: LeadStore


@pytest.fixture(params=["fakes", "dynamodb"])
def stores(request: pytest.FixtureRequest, dummy_aws: None) -> Iterator[Stores]:
    if request.param == "fakes":
        yield Stores(FakeEvents(), FakeLeads())
        return
    with moto_dynamodb() as client:
        yield Stores(EventTable(client, c.EVENTS_TABLE), LeadTable(client, c.LEADS_TABLE))


@pytest.fixture
def client(dummy_aws: None) -> Iterator[Any]:
    with moto_dynamodb((c.EVENTS_TABLE, c.LEADS_TABLE, c.IDEMPOTENCY_TABLE)) as client:
        yield client


def created(leads: LeadStore, lead_id: str, email: str, profiles: set[str]) -> None:
    stored = StoredLead(Lead(lead_id=lead_id, traits=LeadTraits(email=email)), 1, frozenset(profiles))
    leads.save(stored, None, stored.profiles)


def event(profile: str, message_id: str) -> StoredEvent:
    user, anonymous = (profile[2:], None) if profile.startswith("u#") else (None, profile[2:])
    message = page("/pricing", user=user, anonymous=anonymous, message_id=message_id)
    return StoredEvent(profile_id=profile, message=message, received_at=T0)


def test_erasing_profiles_deletes_all_their_events_and_no_others(stores: Stores) -> None:
    for profile, message_id in (("u#ada", "m-1"), ("u#ada", "m-2"), ("a#ada", "m-3"), ("u#bo", "m-4")):
        assert stores.events.put(event(profile, message_id))
    assert sorted(stores.events.erase(["u#ada", "a#ada", "u#nobody"])) == ["m-1", "m-2", "m-3"]
    assert stores.events.for_profiles(["u#ada", "a#ada"]) == []
    assert [e.message_id for e in stores.events.for_profiles(["u#bo"])] == ["m-4"]
    assert stores.events.erase(["u#ada"]) == []


def test_erasing_a_lead_deletes_its_state_and_send_records_and_no_other_leads(stores: Stores) -> None:
    created(stores.leads, "l-ada", "ada@northwind.example", {"u#ada"})
    created(stores.leads, "l-bo", "bo@northwind.example", {"u#bo"})
    for lead_id, content_id in (("l-ada", "awareness-01"), ("l-ada", "awareness-02"), ("l-bo", "awareness-01")):
        stores.leads.record_send(SentRecord(lead_id, Stage.AWARENESS, content_id, "Hi", T0, "ses-1"))
    assert stores.leads.erase_lead("l-ada") == 3
    assert stores.leads.get("l-ada") is None
    assert stores.leads.send_records("l-ada") == []
    assert stores.leads.find_by_email("ada@northwind.example") is None
    assert stores.leads.get("l-bo") is not None
    assert len(stores.leads.send_records("l-bo")) == 1
    assert stores.leads.erase_lead("l-ada") == 0


def test_unlinking_deletes_only_the_links_to_that_lead(stores: Stores) -> None:
    created(stores.leads, "l-ada", "ada@northwind.example", {"u#ada", "a#ada"})
    created(stores.leads, "l-bo", "bo@northwind.example", {"u#bo"})
    assert stores.leads.unlink(["u#ada", "a#ada", "u#bo", "u#nobody"], "l-ada") == 2
    assert stores.leads.leads_for(["u#ada", "a#ada", "u#bo"]) == {"u#bo": "l-bo"}


def test_every_lead_with_an_email_is_found_whatever_its_case(stores: Stores) -> None:
    created(stores.leads, "l-ada", "ada@northwind.example", {"u#ada"})
    created(stores.leads, "l-ada-crm", "ada@northwind.example", {"u#crm-7"})
    created(stores.leads, "l-bo", "bo@northwind.example", {"u#bo"})
    assert sorted(stores.leads.lead_ids_by_email(" ADA@Northwind.example")) == ["l-ada", "l-ada-crm"]
    assert stores.leads.lead_ids_by_email("nobody@northwind.example") == []


def test_erasing_a_lead_deletes_every_item_of_its_partition_whoever_wrote_it(client: Any) -> None:
    # Given items other features keep under the lead (its owner, its mail log), beside its state
    leads = LeadTable(client, c.LEADS_TABLE)
    created(leads, "l-ada", "ada@northwind.example", {"u#ada"})
    for sort_key in ("OWNER", "MAIL#ses-1#delivery#r-1", "ANYTHING#ELSE"):
        client.put_item(TableName=c.LEADS_TABLE, Item={c.LEADS_PK: {"S": "LEAD#l-ada"}, c.LEADS_SK: {"S": sort_key}})
    # When the lead is erased, then none is left
    assert leads.erase_lead("l-ada") == 4
    left = client.query(
        TableName=c.LEADS_TABLE,
        KeyConditionExpression="#pk = :pk",
        ExpressionAttributeNames={"#pk": c.LEADS_PK},
        ExpressionAttributeValues={":pk": {"S": "LEAD#l-ada"}},
    )["Items"]
    assert left == []


def test_erasure_counts_add_up_per_month_and_name_nobody(client: Any) -> None:
    leads = LeadTable(client, c.LEADS_TABLE)
    leads.count_erasure("2026-01", {"leads": 1, "events": 5, "emails": 2})
    leads.count_erasure("2026-01", {"leads": 2, "events": 1, "emails": 0})
    leads.count_erasure("2026-02", {"leads": 1, "events": 0, "emails": 0})
    [january, february] = client.scan(TableName=c.LEADS_TABLE)["Items"]
    assert january == {
        c.LEADS_PK: {"S": "ERASURES"},
        c.LEADS_SK: {"S": "2026-01"},
        "leads": {"N": "3"},
        "events": {"N": "6"},
        "emails": {"N": "2"},
    }
    assert february[c.LEADS_SK] == {"S": "2026-02"}


def test_idempotency_records_are_deleted_by_key_and_only_those(client: Any) -> None:
    for key in ("send#aaa", "send#bbb", "alert-sns#ccc"):
        client.put_item(TableName=c.IDEMPOTENCY_TABLE, Item={"id": {"S": key}, "status": {"S": "COMPLETED"}})
    records = IdempotencyTable(client, c.IDEMPOTENCY_TABLE)
    assert records.delete({"send#aaa", "send#bbb", "send#never-written"}) == 2
    assert [item["id"]["S"] for item in client.scan(TableName=c.IDEMPOTENCY_TABLE)["Items"]] == ["alert-sns#ccc"]


class _ThrottlingClient:
    """DynamoDB answering the first batch delete with everything unprocessed, as it does when throttled."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.batches = 0

    def get_paginator(self, name: str) -> Any:
        return self.real.get_paginator(name)

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self.batches += 1
        if self.batches == 1:
            return {"UnprocessedItems": RequestItems}
        return dict(self.real.batch_write_item(RequestItems=RequestItems))


def test_events_a_throttled_batch_left_unprocessed_are_deleted_on_retry(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = EventTable(client, c.EVENTS_TABLE)
    for n in range(30):  # two batches of deletes
        events.put(event("u#ada", f"m-{n}"))
    monkeypatch.setattr("nurture.adapters.dynamodb.time.sleep", lambda seconds: None)
    throttled = _ThrottlingClient(client)
    assert len(EventTable(throttled, c.EVENTS_TABLE).erase(["u#ada"])) == 30
    assert events.for_profiles(["u#ada"]) == []
    assert throttled.batches == 3
