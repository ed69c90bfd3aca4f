"""Erasure (the right to be forgotten) over in-memory ports: every store forgets the lead, nobody else is touched,
only anonymous counts remain, and a scorer or a sender busy with the lead at that moment cannot bring it back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from nurture.constants import ENV_LOCAL_ADMIN_TOKEN
from nurture.domain.programme import Stage
from nurture.pipeline import send as send_module
from nurture.pipeline.dispatch import dispatch
from nurture.pipeline.erase import SEND_KEY_PREFIX, Eraser, Erasure, send_key
from nurture.pipeline.leads import LeadService
from nurture.pipeline.ports import Ports, SendRequest, SentRecord
from nurture.pipeline.send import Sender
from nurture.runtime import clock, wiring
from nurture.runtime.clock import ManualClock, SystemClock
from nurture.runtime.settings import settings
from nurture.tools.forget import describe, idempotency_table
from nurture.tools.local.lambda_events import LocalContext, http_event
from tests.fakes import FakeEvents, FakeIdempotency, FakeLeads, FakeQueue, fake_content, fake_ports
from tests.support import T0, days, identify, page, starter, starter_yaml, track

ADA = "ada@northwind.example"
ADA_PROFILES = frozenset({"u#u-ada", "a#a-ada"})
ADMIN_TOKEN = "admin-token-test"


@dataclass
class Stack:
    ports: Ports
    service: LeadService
    sender: Sender

    @property
    def events(self) -> FakeEvents:
        assert isinstance(self.ports.events, FakeEvents)
        return self.ports.events

    @property
    def leads(self) -> FakeLeads:
        assert isinstance(self.ports.leads, FakeLeads)
        return self.ports.leads

    @property
    def idempotency(self) -> FakeIdempotency:
        assert isinstance(self.ports.idempotency, FakeIdempotency)
        return self.ports.idempotency

    def receive(self, *messages: Any) -> str:
        """As the ingest API and then the scorer would: store each message, then apply them."""
        for message in messages:
            self.ports.events.put(_stored(message))
        return self.service.receive(list(messages), T0)

    def send_due(self) -> list[SendRequest]:
        """The dispatcher queues what is due and the sender delivers it, once, through its idempotency records."""
        queue = self.ports.queue
        assert isinstance(queue, FakeQueue)
        before = len(queue.queued)
        dispatch(self.service, T0)
        requests = queue.queued[before:]
        for request in requests:
            assert self.sender.send(request, self.ports, fake_content(self.ports), T0).outcome == "sent"
        return requests


def _stored(message: Any) -> Any:
    from nurture.pipeline.ports import StoredEvent

    return StoredEvent(profile_id=message.profile_ids[0], message=message, received_at=message.timestamp)


@pytest.fixture
def stack() -> Stack:
    ports = fake_ports()
    ids = iter(f"lead-{n}" for n in range(1, 1000))
    assert isinstance(ports.idempotency, FakeIdempotency)
    return Stack(ports, LeadService(ports, starter(), new_id=lambda: next(ids)), Sender(ports.idempotency))


def ada(stack: Stack) -> str:
    """Ada read the pricing page anonymously, identified herself, and got her first awareness email."""
    lead_id = stack.receive(
        page("/pricing", user=None, anonymous="a-ada", message_id="ada-1"),
        identify(user="u-ada", anonymous="a-ada", message_id="ada-2", email=ADA, first_name="Ada"),
    )
    [request] = stack.send_due()
    assert request.lead_id == lead_id
    return lead_id


def bo(stack: Stack) -> str:
    """Bo, another lead, who got his first email too: erasing Ada must leave him whole."""
    lead_id = stack.receive(identify(user="u-bo", message_id="bo-1", email="bo@contoso.example"))
    stack.send_due()
    return lead_id


@pytest.fixture
def erased(stack: Stack) -> tuple[str, str]:
    """Ada erased, Bo kept; returns their lead ids."""
    ada_id, bo_id = ada(stack), bo(stack)
    assert Eraser(stack.ports).erase(ada_id, T0) is not None
    return ada_id, bo_id


# --- what an erasure removes ----------------------------------------------------------------------------
def test_an_erased_lead_can_no_longer_be_found_by_id_or_email(stack: Stack, erased: tuple[str, str]) -> None:
    ada_id, _ = erased
    assert stack.leads.get(ada_id) is None
    assert stack.leads.find_by_email(ADA) is None
    assert stack.leads.lead_ids_by_email(ADA) == []


def test_erasure_deletes_the_events_of_every_profile_of_the_lead(stack: Stack, erased: tuple[str, str]) -> None:
    # Given Ada's page view (as an anonymous visitor) and her identify, under two profiles
    # Then none of her events is left, whichever profile it was stored under
    assert stack.events.for_profiles(ADA_PROFILES) == []
    assert {profile for profile, _ in stack.events.items} == {"u#u-bo"}


def test_erasure_unlinks_her_user_id_and_anonymous_id(stack: Stack, erased: tuple[str, str]) -> None:
    assert stack.leads.leads_for(ADA_PROFILES) == {}


def test_erasure_deletes_the_send_records_of_her_emails(stack: Stack, erased: tuple[str, str]) -> None:
    ada_id, _ = erased
    assert stack.leads.send_records(ada_id) == []


def test_erasure_deletes_the_senders_idempotency_records_of_her_emails_and_no_one_elses(
    stack: Stack, erased: tuple[str, str]
) -> None:
    # Given both leads got an email through the sender (one idempotency record each)
    _, bo_id = erased
    [(bo_record_key, _)] = stack.idempotency.records.items()
    # Then only Bo's record is left
    [bo_email] = stack.leads.send_records(bo_id)
    assert bo_record_key == send_key(bo_id, bo_email.sequence, bo_email.content_id)


def test_erasing_ada_leaves_bo_whole(stack: Stack, erased: tuple[str, str]) -> None:
    _, bo_id = erased
    bo_lead = stack.leads.get(bo_id)
    assert bo_lead is not None
    assert bo_lead.lead.email == "bo@contoso.example"
    assert stack.leads.leads_for({"u#u-bo"}) == {"u#u-bo": bo_id}
    assert len(stack.leads.send_records(bo_id)) == 1
    assert len(stack.events.for_profiles({"u#u-bo"})) == 1


def test_only_anonymous_counts_of_the_month_remain(stack: Stack) -> None:
    # Given Ada, with two events and one email
    ada_id = ada(stack)
    # When she is erased
    erasure = Eraser(stack.ports).erase(ada_id, T0)
    # Then the answer and the month's counts say how much, never who
    assert erasure is not None
    assert erasure.model_dump() == {"leads": 1, "events": 2, "profiles": 2, "lead_items": 2, "send_guards": 1}
    assert stack.leads.erasures == {"2026-01": {"leads": 1, "events": 2, "emails": 1}}
    assert ada_id not in json.dumps(stack.leads.erasures)
    assert ADA not in json.dumps(stack.leads.erasures)


def test_the_erasure_key_of_an_email_is_the_one_the_sender_writes(stack: Stack) -> None:
    # Given Ada's first email, sent by the sender through powertools idempotency
    ada_id = ada(stack)
    [record] = stack.leads.send_records(ada_id)
    # Then its idempotency record is under the key erasure derives (and the prefixes are the same constant's value)
    assert set(stack.idempotency.records) == {send_key(ada_id, record.sequence, record.content_id)}
    assert SEND_KEY_PREFIX == send_module.KEY_PREFIX


def test_the_record_of_an_email_skipped_as_broken_is_erased_too(stack: Stack, tmp_path: Any) -> None:
    # Given Ada's first email could not be rendered: the sender kept an idempotency record, the lead only its id
    from nurture.adapters.content import FolderContent
    from nurture.pipeline.content import CachedContent

    lead_id = stack.receive(identify(user="u-ada", message_id="ada-1", email=ADA))
    dispatch(stack.service, T0)
    assert isinstance(stack.ports.queue, FakeQueue)
    [request] = stack.ports.queue.queued
    broken = tmp_path / "content"
    (broken / "emails").mkdir(parents=True)
    (broken / "programme.yaml").write_text(starter_yaml())
    (broken / "emails" / f"{request.content_id}.md").write_text(
        "---\nid: x\nsequence: awareness\nsubject: Hi\n---\n{{ lead.first_name | nosuchfilter }}\n"
    )
    delivery = stack.sender.send(request, stack.ports, CachedContent(FolderContent(broken)), T0)
    assert delivery.reason == "broken content"
    stored = stack.leads.get(lead_id)
    assert stored is not None
    assert stored.lead.skipped == (request.content_id,)
    assert stored.lead.sent == ()
    assert [key for key in stack.idempotency.records if key.startswith("send#")] == [
        send_key(lead_id, Stage.AWARENESS, request.content_id)
    ]
    # When she is erased
    Eraser(stack.ports).erase(lead_id, T0)
    # Then that record is gone too (operations' notice of the broken version, which names no lead, stays)
    assert [key.split("#")[0] for key in stack.idempotency.records] == ["broken"]


def test_the_record_of_an_email_skipped_after_an_opt_out_is_erased_too(stack: Stack) -> None:
    # Given an email queued for Ada, who unsubscribed before the sender got to it: the sender kept an idempotency
    # record of the skip, and wrote no send record
    lead_id = stack.receive(identify(user="u-ada", message_id="ada-1", email=ADA))
    dispatch(stack.service, T0)
    assert isinstance(stack.ports.queue, FakeQueue)
    [request] = stack.ports.queue.queued
    stack.receive(track("Unsubscribed", T0, user="u-ada", message_id="ada-2"))
    assert stack.sender.send(request, stack.ports, fake_content(stack.ports), T0).outcome == "skipped"
    assert stack.leads.send_records(lead_id) == []
    assert list(stack.idempotency.records) == [send_key(lead_id, Stage.AWARENESS, request.content_id)]
    # When she is erased
    Eraser(stack.ports).erase(lead_id, T0)
    # Then that record is gone too
    assert stack.idempotency.records == {}


# --- asking twice, or for nobody -------------------------------------------------------------------------
def test_erasing_an_unknown_lead_or_the_same_lead_twice_finds_nothing(stack: Stack) -> None:
    ada_id = ada(stack)
    eraser = Eraser(stack.ports)
    assert eraser.erase("no-such-lead", T0) is None
    assert eraser.erase(ada_id, T0) is not None
    assert eraser.erase(ada_id, T0) is None
    assert stack.leads.erasures["2026-01"]["leads"] == 1  # nothing counted for the requests that found nothing


def test_forgetting_an_email_erases_every_lead_that_gave_it(stack: Stack) -> None:
    # Given two userIds that identified with Ada's address (her work and her CRM id), and Bo
    first = stack.receive(identify(user="u-ada", message_id="ada-1", email=ADA))
    second = stack.receive(identify(user="crm-77", message_id="ada-2", email=" Ada@Northwind.example"))
    bo_id = bo(stack)
    assert first != second
    # When her email is forgotten (written as she may type it)
    erasure = Eraser(stack.ports).forget("ADA@northwind.example ", T0)
    # Then both are erased, and Bo is not
    assert erasure is not None
    assert erasure.leads == 2
    assert stack.leads.get(first) is None
    assert stack.leads.get(second) is None
    assert stack.leads.get(bo_id) is not None
    assert Eraser(stack.ports).forget(ADA, T0) is None


# --- afterwards, and meanwhile ---------------------------------------------------------------------------
def test_a_later_message_from_the_same_person_starts_a_new_lead_with_no_history(stack: Stack) -> None:
    # Given Ada, erased after reading the pricing page and getting an email
    old_id = ada(stack)
    Eraser(stack.ports).erase(old_id, T0)
    # When she identifies again with the same userId, anonymousId and email
    new_id = stack.receive(identify(T0 + days(1), user="u-ada", anonymous="a-ada", message_id="ada-3", email=ADA))
    # Then she is a new lead: a new id, nothing of the pricing page, the email or the old journey
    assert new_id != old_id
    stored = stack.leads.get(new_id)
    assert stored is not None
    assert stored.lead.sent == ()
    assert stored.lead.intent(starter(), T0 + days(1)) == 0
    assert [change.from_stage for change in stored.lead.history] == [None]
    assert stack.leads.find_by_email(ADA) == stored


def test_a_lead_a_concurrent_scorer_recreates_from_an_erased_message_is_erased_too(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given Ada, and a scorer still holding her identify (read from the stream before the erasure)
    ada_id = ada(stack)
    stale = identify(user="u-ada", anonymous="a-ada", message_id="ada-2", email=ADA, first_name="Ada")
    erase_lead = stack.leads.erase_lead
    recreated: list[str] = []

    def scorer_retries_meanwhile(lead_id: str) -> int:
        deleted = erase_lead(lead_id)
        if not recreated:  # its conditional write failed: it resolves the profiles again, finds no lead, makes one
            recreated.append(stack.service.receive([stale], T0))
        return deleted

    monkeypatch.setattr(stack.leads, "erase_lead", scorer_retries_meanwhile)
    # When Ada is erased
    erasure = Eraser(stack.ports).erase(ada_id, T0)
    # Then the lead the scorer made from her erased message is gone too: no lead has her email or her profiles
    assert recreated
    assert recreated[0] != ada_id
    assert erasure is not None
    assert erasure.leads == 2
    assert stack.leads.lead_ids_by_email(ADA) == []
    assert stack.leads.leads_for(ADA_PROFILES) == {}


def test_a_lead_made_by_a_message_sent_during_the_erasure_is_kept(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given Ada, who identifies again (a new message) while her erasure runs
    ada_id = ada(stack)
    erase_lead = stack.leads.erase_lead
    new: list[str] = []

    def she_comes_back_meanwhile(lead_id: str) -> int:
        deleted = erase_lead(lead_id)
        if not new:
            new.append(stack.receive(identify(T0, user="u-ada", message_id="ada-new", email=ADA)))
        return deleted

    monkeypatch.setattr(stack.leads, "erase_lead", she_comes_back_meanwhile)
    Eraser(stack.ports).erase(ada_id, T0)
    # Then the new lead, which holds none of what was erased, stays: she asked to be forgotten, then came back
    assert stack.leads.lead_ids_by_email(ADA) == new


def test_a_send_record_written_while_the_lead_was_erased_is_removed(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given Ada, and the sender recording an email it sent her just as her lead item is deleted
    ada_id = ada(stack)
    erase_lead = stack.leads.erase_lead
    late = SentRecord(ada_id, Stage.AWARENESS, "awareness-02", "Hi Ada", T0, "ses-late")

    recorded: list[SentRecord] = []

    def sender_records_meanwhile(lead_id: str) -> int:
        deleted = erase_lead(lead_id)
        if not recorded:
            stack.leads.record_send(late)
            recorded.append(late)
        return deleted

    monkeypatch.setattr(stack.leads, "erase_lead", sender_records_meanwhile)
    Eraser(stack.ports).erase(ada_id, T0)
    # Then that record is gone too
    assert stack.leads.send_records(ada_id) == []


# --- over the API ----------------------------------------------------------------------------------------
@pytest.fixture
def api(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    monkeypatch.setenv(ENV_LOCAL_ADMIN_TOKEN, ADMIN_TOKEN)
    settings.cache_clear()
    clock.use(ManualClock(T0))
    wiring.override(ports=stack.ports, content=fake_content(stack.ports))
    yield
    clock.use(SystemClock())
    wiring.reset()


def call(method: str, path: str, token: str | None = ADMIN_TOKEN) -> tuple[int, Any]:
    from nurture.api.resolver import build_app

    headers = {"authorization": f"Bearer {token}"} if token else {}
    event = http_event(method, path, "", headers, b"", T0)
    answer = build_app(lambda: frozenset()).resolve(event, LocalContext("ingest"))  # type: ignore[arg-type]
    return answer["statusCode"], json.loads(answer["body"] or "null")


def test_delete_erases_the_lead_and_answers_what_was_removed_then_404(stack: Stack, api: None) -> None:
    ada_id = ada(stack)
    status, body = call("DELETE", f"/v1/leads/{ada_id}")
    assert (status, body) == (
        200,
        {"leads": 1, "events": 2, "profiles": 2, "lead_items": 2, "send_guards": 1},
    )
    assert call("GET", f"/v1/leads/{ada_id}")[0] == 404
    status, body = call("DELETE", f"/v1/leads/{ada_id}")
    assert status == 404
    assert "erased already" in body["message"]


def test_delete_needs_the_admin_credential_and_changes_nothing_without_it(stack: Stack, api: None) -> None:
    ada_id = ada(stack)
    assert call("DELETE", f"/v1/leads/{ada_id}", token="not-the-token")[0] == 401
    assert call("DELETE", f"/v1/leads/{ada_id}", token=None)[0] == 401
    assert stack.leads.get(ada_id) is not None
    assert len(stack.events.items) == 2


def test_delete_with_a_malformed_lead_id_is_400_naming_it(stack: Stack, api: None) -> None:
    status, body = call("DELETE", "/v1/leads/not%20an%20id")
    assert status == 400
    assert [e["field"] for e in body["errors"]] == ["lead_id"]


def test_a_track_after_erasure_by_an_erased_anonymous_visitor_is_a_new_anonymous_lead(stack: Stack) -> None:
    old_id = ada(stack)
    Eraser(stack.ports).erase(old_id, T0)
    new_id = stack.receive(track("Case Study Downloaded", T0, user=None, anonymous="a-ada", message_id="ada-4"))
    stored = stack.leads.get(new_id)
    assert new_id != old_id
    assert stored is not None
    assert stored.lead.email is None


# --- nurture forget --------------------------------------------------------------------------------------
class _CloudFormation:
    """describe_stack_resources as AWS answers it for the CDK app's stack, its table names generated."""

    def describe_stack_resources(self, StackName: str) -> dict[str, Any]:
        tables = (
            ("StorageEvents5C3B1D7A", "Nurture-StorageEvents-1A2B"),
            ("StorageIdempotency0F0F0F0F", "Nurture-StorageIdempotency-3C4D"),
            ("StorageLeadsA1B2C3D4", "Nurture-StorageLeads-5E6F"),
        )
        return {
            "StackResources": [
                {"LogicalResourceId": logical, "ResourceType": "AWS::DynamoDB::Table", "PhysicalResourceId": physical}
                for logical, physical in tables
            ]
        }


def test_nurture_forget_finds_a_deployed_stacks_idempotency_table_by_its_logical_id() -> None:
    assert idempotency_table(_CloudFormation(), "Nurture") == "Nurture-StorageIdempotency-3C4D"


def test_nurture_forget_prints_counts_in_words_a_person_reads() -> None:
    one = Erasure(leads=1, events=1, profiles=1, lead_items=1, send_guards=1)
    many = Erasure(leads=2, events=12, profiles=3, lead_items=5, send_guards=0)
    assert describe(one) == (
        "erased 1 lead: 1 event, 1 profile link, 1 lead item (state, send records, ...), 1 send idempotency record"
    )
    assert describe(many) == (
        "erased 2 leads: 12 events, 3 profile links, 5 lead items (state, send records, ...), "
        "0 send idempotency records"
    )
