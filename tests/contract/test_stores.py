"""One contract for the stores: every test runs against the in-memory fakes and the DynamoDB adapters on moto.

The unit tests trust the fakes to behave as DynamoDB does; these tests are what earns that trust. They use only
the ports' methods (`EventStore`, `LeadStore`), never the tables' items, so both sides are held to the same promise:
a lead is written only at the version it was read, a profile belongs to one lead, a merge deletes the absorbed
lead only as it was read, an outbox entry is removed exactly (by effect id, whoever wrote since) and a stale
writer cannot save it back, and an event is stored once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

import pytest

from nurture import constants as c
from nurture.adapters.dynamodb import EventTable, LeadTable
from nurture.domain.journey import Effect, Lead, Transition
from nurture.domain.messages import LeadTraits
from nurture.domain.programme import Stage
from nurture.pipeline.ports import Conflict, EventStore, LeadStore, Pending, SentRecord, StoredEvent, StoredLead
from tests.contract.conftest import moto_dynamodb
from tests.fakes import FakeEvents, FakeLeads
from tests.support import T0, identify, known_lead, page, track

SHARDS = 4  # few shards, so a handful of leads share some and leave others empty


@dataclass(frozen=True)
class Stores:
    events: EventStore
    leads: LeadStore


@pytest.fixture(params=["fakes", "dynamodb"])
def stores(request: pytest.FixtureRequest, dummy_aws: None) -> Iterator[Stores]:
    if request.param == "fakes":
        yield Stores(FakeEvents(), FakeLeads(due_shards=SHARDS))
        return
    with moto_dynamodb() as client:
        yield Stores(EventTable(client, c.EVENTS_TABLE), LeadTable(client, c.LEADS_TABLE, due_shards=SHARDS))


@pytest.fixture
def leads(stores: Stores) -> LeadStore:
    return stores.leads


@pytest.fixture
def events(stores: Stores) -> EventStore:
    return stores.events


def lead(lead_id: str, email: str | None = None) -> Lead:
    return Lead(lead_id=lead_id, traits=LeadTraits(email=email))


def transition(lead_id: str, to: Stage, at: datetime = T0) -> Effect:
    return Transition(lead_id=lead_id, from_stage=None, to_stage=to, reason="test", at=at, programme="v1")


def at_version(
    base: Lead | StoredLead,
    version: int,
    profiles: set[str] | frozenset[str] | None = None,
    outbox: tuple[Effect | Pending, ...] = (),
    due_at: datetime | None = None,
) -> StoredLead:
    """The lead (or a stored lead's lead) as it would be written at `version`; effects saved at T0."""
    the_lead = base.lead if isinstance(base, StoredLead) else base
    known = base.profiles if isinstance(base, StoredLead) else frozenset()
    pending = tuple(e if isinstance(e, Pending) else Pending(e, T0) for e in outbox)
    return StoredLead(
        lead=the_lead, version=version, profiles=frozenset(profiles or known), outbox=pending, due_at=due_at
    )


def created(leads: LeadStore, stored: StoredLead) -> StoredLead:
    leads.save(stored, None, stored.profiles)
    return stored


# --- writing and reading a lead ------------------------------------------------------------------------------


def test_a_lead_reads_back_exactly_as_it_was_written(leads: LeadStore) -> None:
    # Given a lead with real state: traits, a stage, signals, an outbox and a next action
    journey = known_lead(company="Northwind", company_size=250)
    journey.apply(page("/pricing", T0 + timedelta(hours=1)))
    stored = StoredLead(
        lead=journey.lead,
        version=1,
        profiles=frozenset({"u#u-1", "a#anon-1"}),
        outbox=tuple(Pending(e, T0 + timedelta(hours=1, microseconds=n)) for n, e in enumerate(journey.effects)),
        due_at=journey.lead.next_action_at(journey.programme),
    )
    assert stored.outbox
    assert stored.due_at is not None
    # When it is created
    leads.save(stored, None, stored.profiles)
    # Then it reads back equal, and its profiles point at it
    assert leads.get("u-1") == stored
    assert leads.leads_for(["u#u-1", "a#anon-1"]) == {"u#u-1": "u-1", "a#anon-1": "u-1"}


def test_an_unknown_lead_is_none(leads: LeadStore) -> None:
    assert leads.get("nobody") is None
    assert leads.find_by_email("nobody@northwind.example") is None
    assert leads.leads_for(["u#nobody"]) == {}


def test_creating_a_lead_that_exists_is_a_conflict_and_keeps_the_first(leads: LeadStore) -> None:
    first = created(leads, at_version(lead("l-1", "first@northwind.example"), 1, {"u#first"}))
    second = at_version(lead("l-1", "second@northwind.example"), 1, {"u#second"})

    with pytest.raises(Conflict):
        leads.save(second, None, second.profiles)

    assert leads.get("l-1") == first
    assert leads.leads_for(["u#first", "u#second"]) == {"u#first": "l-1"}
    assert leads.find_by_email("second@northwind.example") is None


@pytest.mark.parametrize("links", [frozenset(), frozenset({"a#new"})], ids=["lead-only", "with-new-links"])
def test_a_write_at_a_stale_version_is_a_conflict_and_changes_nothing(leads: LeadStore, links: frozenset[str]) -> None:
    # Given a lead that two writers read at version 1, and the first one wrote version 2
    v1 = created(leads, at_version(lead("l-1"), 1, {"u#one"}))
    v2 = at_version(v1, 2, outbox=(transition("l-1", Stage.AWARENESS),), due_at=T0 + timedelta(days=1))
    leads.save(v2, 1)
    # When the second writer writes its own version 2, read at version 1
    late = at_version(lead("l-1", "late@northwind.example"), 2, v1.profiles | links, due_at=T0)
    with pytest.raises(Conflict):
        leads.save(late, 1, links)
    # Then the first writer's version stands, and none of the late write's links or index entries exist
    assert leads.get("l-1") == v2
    assert leads.leads_for(["u#one", "a#new"]) == {"u#one": "l-1"}
    assert leads.find_by_email("late@northwind.example") is None
    assert list(due_everywhere(leads, T0)) == []


def test_writing_a_version_of_a_lead_that_does_not_exist_is_a_conflict(leads: LeadStore) -> None:
    with pytest.raises(Conflict):
        leads.save(at_version(lead("ghost"), 2, {"u#ghost"}), 1)
    assert leads.get("ghost") is None


def test_consecutive_versions_each_succeed(leads: LeadStore) -> None:
    stored = created(leads, at_version(lead("l-1"), 1, {"u#one"}))
    for version in range(2, 5):
        stored = at_version(stored, version, stored.profiles | {f"a#{version}"})
        leads.save(stored, version - 1, frozenset({f"a#{version}"}))
    assert leads.get("l-1") == stored
    assert leads.leads_for(["u#one", "a#2", "a#3", "a#4"]) == dict.fromkeys(["u#one", "a#2", "a#3", "a#4"], "l-1")


# --- profile links -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("existing", [False, True], ids=["creating", "updating"])
def test_linking_a_profile_that_belongs_to_another_lead_is_a_conflict_with_no_partial_write(
    leads: LeadStore, existing: bool
) -> None:
    # Given lead B owns u#bo
    owner = created(leads, at_version(lead("l-bo"), 1, {"u#bo"}))
    before = created(leads, at_version(lead("l-ada"), 1, {"u#ada"})) if existing else None
    # When lead A tries to link a fresh profile, B's profile and another fresh one in one write
    claimed = frozenset({"a#fresh-1", "u#bo", "u#zz-fresh-2"})
    attempt = at_version(lead("l-ada", "ada@northwind.example"), 2 if existing else 1, claimed | {"u#ada"})
    with pytest.raises(Conflict):
        leads.save(attempt, 1 if existing else None, claimed)
    # Then nothing of A's write happened: not the lead, not the fresh links; B keeps its profile
    assert leads.get("l-ada") == before
    assert leads.leads_for([*claimed, "u#ada"]) == {"u#bo": "l-bo"} | ({"u#ada": "l-ada"} if existing else {})
    assert leads.get("l-bo") == owner
    assert leads.find_by_email("ada@northwind.example") is None


def test_linking_a_profile_again_to_its_own_lead_is_allowed(leads: LeadStore) -> None:
    v1 = created(leads, at_version(lead("l-1"), 1, {"u#one", "a#one"}))
    v2 = at_version(v1, 2, v1.profiles | {"a#two"})
    leads.save(v2, 1, frozenset({"a#one", "a#two"}))
    assert leads.get("l-1") == v2
    assert leads.leads_for(["u#one", "a#one", "a#two"]) == dict.fromkeys(["u#one", "a#one", "a#two"], "l-1")


def test_leads_for_answers_only_known_profiles_however_many_are_asked(leads: LeadStore) -> None:
    # More profiles than one batched read takes (100), over several leads
    owned: dict[str, str] = {}
    for n in range(3):
        profiles = {f"a#{n}-{i:02}" for i in range(50)}
        created(leads, at_version(lead(f"l-{n}"), 1, profiles))
        owned |= dict.fromkeys(profiles, f"l-{n}")
    asked = [*owned, "u#unknown", "a#0-00", "a#unknown"]  # unknown profiles and a repeat
    assert leads.leads_for(asked) == owned
    assert leads.leads_for([]) == {}
    assert leads.leads_for(iter(["a#1-07"])) == {"a#1-07": "l-1"}


# --- merging an anonymous lead into another -------------------------------------------------------------------


def merged(survivor: StoredLead, absorbed: StoredLead) -> StoredLead:
    return at_version(survivor, survivor.version + 1, survivor.profiles | absorbed.profiles)


def test_a_merge_deletes_the_absorbed_lead_and_moves_its_profiles_to_the_survivor(leads: LeadStore) -> None:
    survivor = created(leads, at_version(lead("l-ada", "ada@northwind.example"), 1, {"u#ada"}))
    absorbed = created(leads, at_version(lead("l-anon"), 3, {"a#anon-1", "a#anon-2"}, due_at=T0))
    after = merged(survivor, absorbed)

    leads.save(after, 1, absorbed.profiles, absorbed=absorbed)

    assert leads.get("l-anon") is None
    assert leads.get("l-ada") == after
    assert leads.leads_for(["u#ada", "a#anon-1", "a#anon-2"]) == dict.fromkeys(
        ["u#ada", "a#anon-1", "a#anon-2"], "l-ada"
    )
    assert list(due_everywhere(leads, T0)) == []  # the absorbed lead left the due index with it


def test_a_merge_with_an_absorbed_lead_changed_since_read_is_a_conflict_and_writes_nothing(leads: LeadStore) -> None:
    # Given the anonymous lead was read at version 1, then another writer linked a new profile to it
    survivor = created(leads, at_version(lead("l-ada", "ada@northwind.example"), 1, {"u#ada"}))
    read = created(leads, at_version(lead("l-anon"), 1, {"a#anon-1"}))
    changed = at_version(read, 2, read.profiles | {"a#anon-2"})
    leads.save(changed, 1, frozenset({"a#anon-2"}))
    # When the survivor merges the version it read
    after = at_version(survivor, 2, survivor.profiles | read.profiles | {"a#seen-with-ada"}, due_at=T0)
    with pytest.raises(Conflict):
        leads.save(after, 1, read.profiles | {"a#seen-with-ada"}, absorbed=read)
    # Then neither lead nor any link changed
    assert leads.get("l-ada") == survivor
    assert leads.get("l-anon") == changed
    assert leads.leads_for(["u#ada", "a#anon-1", "a#anon-2", "a#seen-with-ada"]) == {
        "u#ada": "l-ada",
        "a#anon-1": "l-anon",
        "a#anon-2": "l-anon",
    }
    assert list(due_everywhere(leads, T0)) == []


def test_a_merge_with_an_absorbed_lead_already_merged_elsewhere_is_a_conflict(leads: LeadStore) -> None:
    # Given two leads read the same anonymous lead, and the first merged it
    first = created(leads, at_version(lead("l-first"), 1, {"u#first"}))
    second = created(leads, at_version(lead("l-second"), 1, {"u#second"}))
    anon = created(leads, at_version(lead("l-anon"), 1, {"a#anon"}))
    leads.save(merged(first, anon), 1, anon.profiles, absorbed=anon)
    # When the second merges it too
    with pytest.raises(Conflict):
        leads.save(merged(second, anon), 1, anon.profiles, absorbed=anon)
    # Then the first merge stands
    assert leads.get("l-second") == second
    assert leads.leads_for(["a#anon", "u#second"]) == {"a#anon": "l-first", "u#second": "l-second"}


# --- the outbox ----------------------------------------------------------------------------------------------


def test_removing_outbox_entries_removes_exactly_those_and_moves_the_lead_on(leads: LeadStore) -> None:
    # Given a lead written at version 1 with two effects in its outbox
    a, b = transition("l-1", Stage.AWARENESS), transition("l-1", Stage.CONSIDERATION)
    stored = created(leads, at_version(lead("l-1", "one@northwind.example"), 1, {"u#one"}, (a, b), T0))
    # When its writer removes the one it published, still at its version
    later = T0 + timedelta(days=1)
    leads.clear_outbox("l-1", [stored.outbox[0].id], 1, later)
    # Then only that entry is gone, the due index moved, and the lead is at a new version
    assert leads.get("l-1") == replace(stored, outbox=stored.outbox[1:], version=2, due_at=later)
    assert list(due_everywhere(leads, T0)) == []
    assert list(due_everywhere(leads, later)) == ["l-1"]
    # so a writer holding version 1 (which lists the removed entry) cannot save it back
    with pytest.raises(Conflict):
        leads.save(at_version(stored, 2, outbox=(a, b)), 1)
    leads.save(at_version(stored, 3, outbox=(b,)), 2)
    # and removing it again changes nothing but the version (idempotent)
    leads.clear_outbox("l-1", [stored.outbox[0].id], 1, None)
    assert leads.get("l-1") == at_version(stored, 4, outbox=(b,))


def test_removing_entries_after_a_newer_write_keeps_its_entries_and_its_due_index(leads: LeadStore) -> None:
    # Given a writer stored version 1 with its effect, and before it removed it a second writer stored version 2,
    # carrying version 1's entry and adding its own
    mine, theirs = transition("l-1", Stage.AWARENESS), transition("l-1", Stage.CONSIDERATION, T0 + timedelta(1))
    v1 = created(leads, at_version(lead("l-1"), 1, {"u#one"}, (mine,), T0))
    v2 = at_version(v1, 2, outbox=(mine, theirs), due_at=T0 + timedelta(hours=1))
    leads.save(v2, 1)
    # When the first writer removes the entry it published
    leads.clear_outbox("l-1", [v1.outbox[0].id], 1, None)
    # Then exactly its entry is gone: version 2's own entry and due index stay
    assert leads.get("l-1") == replace(v2, outbox=v2.outbox[1:], version=3)
    assert list(due_everywhere(leads, T0 + timedelta(hours=1))) == ["l-1"]


def test_removing_the_last_entry_can_take_the_lead_off_the_due_index(leads: LeadStore) -> None:
    stored = created(leads, at_version(lead("l-1"), 1, {"u#one"}, (transition("l-1", Stage.AWARENESS),), T0))
    leads.clear_outbox("l-1", [p.id for p in stored.outbox], 1, None)
    assert leads.get("l-1") == replace(stored, outbox=(), version=2, due_at=None)
    assert list(due_everywhere(leads, T0 + timedelta(days=365))) == []


def test_clearing_the_outbox_of_a_missing_lead_creates_nothing(leads: LeadStore) -> None:
    leads.clear_outbox("ghost", [transition("ghost", Stage.AWARENESS).kind + "-x"], 1, T0)
    assert leads.get("ghost") is None
    assert list(due_everywhere(leads, T0)) == []
    # and the lead can still be created afterwards
    created(leads, at_version(lead("ghost"), 1, {"u#ghost"}))


# --- finding leads -------------------------------------------------------------------------------------------


def test_find_by_email_ignores_case_and_surrounding_space(leads: LeadStore) -> None:
    ada = created(leads, at_version(lead("l-ada", "Ada.Lovelace@Northwind.example"), 1, {"u#ada"}))
    created(leads, at_version(lead("l-bo", "bo@northwind.example"), 1, {"u#bo"}))
    created(leads, at_version(lead("l-anon"), 1, {"a#anon"}))

    assert leads.find_by_email("ada.lovelace@northwind.example") == ada
    assert leads.find_by_email("ADA.LOVELACE@NORTHWIND.EXAMPLE") == ada
    assert leads.find_by_email("  Ada.Lovelace@northwind.Example\n") == ada
    assert leads.find_by_email("lovelace@northwind.example") is None


def test_find_by_email_follows_a_changed_email(leads: LeadStore) -> None:
    v1 = created(leads, at_version(lead("l-ada", "ada@old.example"), 1, {"u#ada"}))
    v2 = StoredLead(lead=lead("l-ada", "ada@new.example"), version=2, profiles=v1.profiles)
    leads.save(v2, 1)
    assert leads.find_by_email("ada@old.example") is None
    assert leads.find_by_email("ada@new.example") == v2


def due_everywhere(leads: LeadStore, now: datetime) -> Iterator[str]:
    for shard in range(SHARDS):
        yield from leads.due(shard, now)


def test_due_answers_each_shards_leads_whose_next_action_is_at_or_before_now(leads: LeadStore) -> None:
    now = T0 + timedelta(days=3)
    # Given leads due long ago, a second ago, exactly now, a microsecond late, tomorrow and never
    due_at = {
        "l-long-ago": now - timedelta(days=30),
        "l-second-ago": now - timedelta(seconds=1),
        "l-now": now,
        "l-later": now + timedelta(microseconds=1),
        "l-tomorrow": now + timedelta(days=1),
        "l-never": None,
    }
    for n in range(12):  # and enough due leads to reach several shards
        due_at[f"l-due-{n}"] = now - timedelta(hours=n)
    for lead_id, at in due_at.items():
        created(leads, at_version(lead(lead_id), 1, {f"u#{lead_id}"}, due_at=at))
    expected = {lead_id for lead_id, at in due_at.items() if at is not None and at <= now}
    # When each shard is asked
    by_shard = [list(leads.due(shard, now)) for shard in range(SHARDS)]
    # Then every due lead is answered once, by exactly one shard, and no other lead is
    answered = [lead_id for shard in by_shard for lead_id in shard]
    assert sorted(answered) == sorted(expected)
    assert sum(1 for shard in by_shard if shard) > 1
    # and a lead stays in its shard
    later = [set(leads.due(shard, now + timedelta(days=2))) for shard in range(SHARDS)]
    for shard, ids in enumerate(by_shard):
        assert set(ids) <= later[shard]


def test_a_lead_leaves_the_due_index_when_its_next_action_moves_or_goes(leads: LeadStore) -> None:
    moved = created(leads, at_version(lead("l-moved"), 1, {"u#moved"}, due_at=T0))
    done = created(leads, at_version(lead("l-done"), 1, {"u#done"}, due_at=T0))
    assert sorted(due_everywhere(leads, T0)) == ["l-done", "l-moved"]

    leads.save(at_version(moved, 2, due_at=T0 + timedelta(days=7)), 1)
    leads.save(at_version(done, 2, due_at=None), 1)

    assert list(due_everywhere(leads, T0 + timedelta(days=6))) == []
    assert list(due_everywhere(leads, T0 + timedelta(days=7))) == ["l-moved"]


def test_due_accepts_a_now_in_any_time_zone(leads: LeadStore) -> None:
    created(leads, at_version(lead("l-1"), 1, {"u#one"}, due_at=T0))
    berlin = T0.astimezone(timezone(timedelta(hours=1)))
    assert list(due_everywhere(leads, berlin)) == ["l-1"]
    assert list(due_everywhere(leads, berlin - timedelta(microseconds=1))) == []


# --- events --------------------------------------------------------------------------------------------------


def event(message: object, profile_id: str = "u#u-1", received_at: datetime = T0) -> StoredEvent:
    return StoredEvent.model_validate({"profile_id": profile_id, "message": message, "received_at": received_at})


def test_an_event_is_stored_once_per_profile_and_message_id(events: EventStore) -> None:
    first = event(track("Demo Requested", message_id="m-1"))
    retry = event(page("/pricing", T0 + timedelta(minutes=5), message_id="m-1"), received_at=T0 + timedelta(minutes=5))

    assert events.put(first) is True
    assert events.put(retry) is False
    assert events.put(first) is False

    assert events.for_profiles(["u#u-1"]) == [first]


def test_the_same_message_id_under_another_profile_is_another_event(events: EventStore) -> None:
    known = event(identify(message_id="m-1"), "u#u-1")
    anonymous = event(identify(message_id="m-1", user=None, anonymous="anon-1"), "a#anon-1")
    assert events.put(known) is True
    assert events.put(anonymous) is True
    assert events.for_profiles(["u#u-1"]) == [known]
    assert events.for_profiles(["a#anon-1"]) == [anonymous]


def test_for_profiles_answers_every_event_of_the_asked_profiles_only(events: EventStore) -> None:
    stored = [
        event(page(f"/p/{n}", T0 + timedelta(minutes=n), message_id=f"m-{n:02}"), f"u#u-{n % 3}") for n in range(12)
    ]
    for e in stored:
        assert events.put(e) is True

    def key(e: StoredEvent) -> tuple[str, str]:
        return e.profile_id, e.message_id

    answered = events.for_profiles(iter(["u#u-0", "u#u-2", "u#nobody"]))
    assert sorted(answered, key=key) == sorted((e for e in stored if e.profile_id != "u#u-1"), key=key)
    assert events.for_profiles([]) == []
    assert events.for_profiles(["u#nobody"]) == []


def test_next_due_answers_the_earliest_next_action_of_a_shard(dummy_aws: None) -> None:
    # Given (on DynamoDB only: the local stack's idle-skip is not a port) leads of one shard due at different times
    with moto_dynamodb((c.LEADS_TABLE,)) as client:
        table = LeadTable(client, c.LEADS_TABLE, due_shards=1)
        for number, due_in in enumerate((timedelta(days=3), timedelta(hours=2), timedelta(days=9))):
            created(table, at_version(lead(f"next-{number}"), 1, {f"u#next-{number}"}, due_at=T0 + due_in))

        # When the local stack asks for the shard's next action
        # Then it is the earliest, not whichever lead the index happens to hold first or last
        assert table.next_due(0) == T0 + timedelta(hours=2)


# --- send records --------------------------------------------------------------------------------------------


def sent(
    lead_id: str, sequence: Stage, content_id: str, provider_id: str = "", at: datetime = T0, variant: int = 0
) -> SentRecord:
    return SentRecord(
        lead_id=lead_id,
        sequence=sequence,
        content_id=content_id,
        subject=f"About {content_id}",
        sent_at=at,
        provider_id=provider_id,
        variant=variant,
    )


def test_send_records_answers_one_leads_records_only(leads: LeadStore) -> None:
    # Given two leads (their state items beside their records), each with sends, one of them unconfirmed
    created(leads, at_version(lead("l-ada", "ada@northwind.example"), 1, {"u#ada"}))
    created(leads, at_version(lead("l-bo", "bo@northwind.example"), 1, {"u#bo"}))
    later = T0 + timedelta(days=7, microseconds=250)
    adas = [
        sent("l-ada", Stage.AWARENESS, "awareness-01", "ses-1", variant=1),  # the second subject of an A/B test
        sent("l-ada", Stage.AWARENESS, "awareness-02", "", later),  # unconfirmed: SES's answer was lost
        sent("l-ada", Stage.CONSIDERATION, "consideration-01", "ses-3", later.astimezone(timezone(timedelta(hours=1)))),
    ]
    bos = [sent("l-bo", Stage.AWARENESS, "awareness-01", "ses-4")]
    for record in (adas[0], bos[0], adas[1], adas[2]):
        leads.record_send(record)

    # Then each lead reads back its own records exactly, ordered by sequence and email, and nobody's are empty
    assert leads.send_records("l-ada") == adas
    assert leads.send_records("l-bo") == bos
    assert leads.send_records("l-nobody") == []


def test_a_send_recorded_again_is_one_record_the_last_written(leads: LeadStore) -> None:
    leads.record_send(sent("l-ada", Stage.AWARENESS, "awareness-01", ""))
    leads.record_send(sent("l-ada", Stage.AWARENESS, "awareness-01", "ses-1", T0 + timedelta(seconds=1)))
    assert leads.send_records("l-ada") == [
        sent("l-ada", Stage.AWARENESS, "awareness-01", "ses-1", T0 + timedelta(seconds=1))
    ]
