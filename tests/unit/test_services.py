"""The services behind the Lambdas, over in-memory ports: exactly-once scoring, races, the outbox,
identity merges, the due-only dispatcher and the at-most-once sender."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import timedelta

import pytest

from nurture.domain.journey import SalesAlert, Transition
from nurture.domain.programme import Stage
from nurture.pipeline.dispatch import dispatch
from nurture.pipeline.leads import LeadService
from nurture.pipeline.ports import Conflict, NotSent, SendRequest, StoredEvent
from nurture.pipeline.score import CoalescingScorer
from nurture.pipeline.send import Sender, deliver
from nurture.runtime.observability import metrics
from tests.fakes import FakeBus, FakeIdempotency, FakeLeads, FakeMailer, FakeQueue, fake_content, fake_ports
from tests.support import T0, days, identify, page, starter, starter_yaml, track


@pytest.fixture
def ports():
    return fake_ports()


@pytest.fixture
def service(ports):
    ids = iter(f"lead-{i}" for i in range(1, 1000))
    return LeadService(ports, starter(), new_id=lambda: next(ids))


def _stored(*messages):
    return [StoredEvent(profile_id=m.profile_ids[0], message=m, received_at=m.timestamp) for m in messages]


def _transitions(ports) -> list[tuple[str | None, str]]:
    bus: FakeBus = ports.bus
    return [(e.from_stage, e.to_stage) for e in bus.published if isinstance(e, Transition)]


# --- scoring from the stream -----------------------------------------------------------------
def test_a_batch_of_one_profiles_events_is_one_write(service, ports) -> None:
    # Given five events of one lead in one stream batch
    events = _stored(identify(T0), page("/blog/a"), page("/pricing"), track("Case Study Downloaded"), page("/blog/b"))
    scorer = CoalescingScorer(service, events, T0)
    # When every record is handled
    for event in events:
        scorer.handle(event)
    # Then the lead was written once (plus clearing its outbox) and moved straight to consideration
    leads: FakeLeads = ports.leads
    assert leads.writes == 2
    assert _transitions(ports) == [(None, Stage.AWARENESS), (Stage.AWARENESS, Stage.CONSIDERATION)]


def test_a_retried_batch_changes_nothing_it_already_changed(service, ports) -> None:
    events = _stored(identify(T0), page("/pricing"), track("Demo Requested"))
    for _ in range(3):  # Lambda retries the whole batch
        scorer = CoalescingScorer(service, events, T0)
        for event in events:
            scorer.handle(event)
    [stored] = ports.leads.items.values()
    assert stored.lead.intent(starter(), T0) == 130
    assert len([e for e in ports.bus.published if isinstance(e, SalesAlert)]) == 1
    assert stored.version == 2  # the write, and the removal of its published outbox entries


def test_a_failing_group_fails_only_its_own_events(service, ports, monkeypatch) -> None:
    events = _stored(identify(T0, user="u-ok"), identify(T0, user="u-bad"), page("/pricing", user="u-bad"))
    original = service.receive

    def receive(messages, now):
        if messages[0].user_id == "u-bad":
            raise RuntimeError("DynamoDB throttled")
        return original(messages, now)

    monkeypatch.setattr(service, "receive", receive)
    scorer = CoalescingScorer(service, events, T0)
    scorer.handle(events[0])
    for event in events[1:]:
        with pytest.raises(RuntimeError):
            scorer.handle(event)
    assert [s.lead.email for s in ports.leads.items.values()] == ["u-ok@northwind.example"]


def test_a_lost_race_is_retried_on_fresh_state(service, ports) -> None:
    service.receive([identify(T0)], T0)
    ports.leads.fail_next_saves = 2  # someone else wrote the lead twice meanwhile
    service.receive([page("/pricing", T0), page("/pricing/team", T0)], T0)
    [stored] = ports.leads.items.values()
    assert stored.lead.stage is Stage.CONSIDERATION


def test_a_lead_nobody_stops_writing_gives_up_with_a_conflict(service, ports) -> None:
    service.receive([identify(T0)], T0)
    ports.leads.fail_next_saves = 100
    with pytest.raises(Conflict):
        service.receive([page("/pricing", T0)], T0)


def test_a_message_for_a_lead_merged_away_meanwhile_lands_on_the_surviving_lead(service, ports, monkeypatch) -> None:
    # Given an anonymous visitor who turned out to be Ada: their lead was merged into hers
    service.receive([page("/pricing", T0, user=None, anonymous="a-1")], T0)
    service.receive([identify(T0, user="u-1")], T0)
    before_the_merge = dict(ports.leads.links)
    service.receive([identify(T0, user="u-1", anonymous="a-1")], T0)
    [ada] = ports.leads.items.values()
    # When the visitor's next page view is resolved on links read just before that merge
    reads: list[frozenset[str]] = []

    def links_read_before_the_merge_then_fresh(profiles):
        reads.append(frozenset(profiles))
        links = before_the_merge if len(reads) == 1 else ports.leads.links
        return {p: links[p] for p in profiles if p in links}

    monkeypatch.setattr(ports.leads, "leads_for", links_read_before_the_merge_then_fresh)
    service.receive([page("/pricing/team", T0 + days(1), user=None, anonymous="a-1")], T0 + days(1))
    # Then the page view joins Ada's lead, and the merged-away lead is not brought back empty
    [stored] = ports.leads.items.values()
    assert stored.lead.lead_id == ada.lead.lead_id
    assert stored.lead.tallies.total_days == ada.lead.tallies.total_days + 1


def test_a_tick_that_loses_a_race_is_retried_on_fresh_state_and_counted(service, ports, monkeypatch) -> None:
    # Given a lead whose first email is due
    service.receive([identify(T0)], T0)
    counted: list[str] = []
    monkeypatch.setattr(metrics, "add_metric", lambda name, **_: counted.append(name))
    # When the dispatcher ticks it while another writer wins the race once
    ports.leads.fail_next_saves = 1
    dispatch(service, T0)
    # Then the email is queued once, and the lost race shows in the LeadWriteConflicts metric
    assert [q.content_id for q in ports.queue.queued] == ["awareness-01-why-drips-stall"]
    assert counted.count("LeadWriteConflicts") == 1


def test_effects_survive_a_crash_between_the_write_and_the_publish(service, ports) -> None:
    # Given EventBridge fails right after the lead was written with its effects
    ports.bus.fail = True
    with pytest.raises(RuntimeError):
        service.receive([identify(T0), page("/pricing", T0), page("/pricing/x", T0)], T0)
    [stored] = ports.leads.items.values()
    # The counts are not in the outbox: added once the write went through (at most once), never republished
    assert [e.kind for e in stored.effects] == ["transition", "transition"]
    counted = list(ports.metrics.added)
    assert counted
    assert all(m.at == T0 for m in counted)
    # When the next event for the lead is processed after EventBridge recovers
    ports.bus.fail = False
    service.receive([page("/blog/a", T0 + days(1))], T0 + days(1))
    # Then the stranded effects are published too, and the outbox is empty
    assert _transitions(ports) == [(None, Stage.AWARENESS), (Stage.AWARENESS, Stage.CONSIDERATION)]
    assert next(iter(ports.leads.items.values())).outbox == ()
    # and the first write's counts were not added again
    assert [m for m in ports.metrics.added if m.at == T0] == counted


def test_an_anonymous_visitors_history_merges_into_the_lead_on_identify(service, ports) -> None:
    service.receive([page("/pricing", T0, user=None, anonymous="a-1")], T0)
    service.receive([identify(T0, user="u-1")], T0)
    service.receive([identify(T0, user="u-1", anonymous="a-1")], T0)
    [stored] = ports.leads.items.values()
    assert stored.profiles == {"u#u-1", "a#a-1"}
    assert stored.lead.intent(starter(), T0) == 30
    assert ports.leads.links == {"u#u-1": stored.lead.lead_id, "a#a-1": stored.lead.lead_id}


def test_a_retried_batch_that_merged_two_leads_changes_nothing_more(service, ports) -> None:
    # Given a known lead, and a stream batch with an anonymous visitor's page view and the identify that ties
    # the visitor to the lead
    service.receive([identify(T0, user="u-1")], T0)
    events = _stored(
        page("/about", T0, user=None, anonymous="a-1"), identify(T0 + days(0.1), user="u-1", anonymous="a-1")
    )
    scorer = CoalescingScorer(service, events, T0)
    for event in events:
        scorer.handle(event)
    [merged] = ports.leads.items.values()
    writes, published = ports.leads.writes, len(ports.bus.published)
    # When Lambda retries the whole batch
    scorer = CoalescingScorer(service, events, T0 + days(0.2))
    for event in events:
        scorer.handle(event)
    # Then the visitor's messages are recognised on the merged lead: nothing is written or published again
    assert ports.leads.items == {merged.lead.lead_id: merged}
    assert (ports.leads.writes, len(ports.bus.published)) == (writes, published)


def test_redelivering_an_applied_message_writes_nothing(service, ports) -> None:
    message = identify(T0)
    service.receive([message], T0)
    writes = ports.leads.writes
    service.receive([message], T0 + days(1))  # the stream delivers it again
    assert ports.leads.writes == writes


# --- the dispatcher --------------------------------------------------------------------------
def test_the_dispatcher_touches_only_the_leads_that_are_due(service, ports) -> None:
    # Given 30 leads who got their first email at T0, so none is due again for 14 days
    for n in range(30):
        service.receive([identify(T0, user=f"u-{n}")], T0)
    assert dispatch(service, T0).ticked == 30
    ports.queue.queued.clear()
    # When one of them moves into consideration a day later and the dispatcher ticks
    tomorrow = T0 + days(1)
    service.receive([page("/pricing", tomorrow, user="u-7"), page("/pricing/x", tomorrow, user="u-7")], tomorrow)
    ports.leads.reads = 0
    report = dispatch(service, tomorrow)
    # Then only that lead was read and ticked, and only its email was queued
    assert (report.due, report.ticked) == (1, 1)
    assert ports.leads.reads == 2  # its due-index entry and its item
    assert [(q.sequence, q.content_id) for q in ports.queue.queued] == [
        (Stage.CONSIDERATION, "consideration-01-how-teams-like-yours")
    ]


def test_a_due_lead_gets_its_email_queued_once(service, ports) -> None:
    service.receive([identify(T0)], T0)
    dispatch(service, T0)
    dispatch(service, T0 + days(0.001))
    assert [q.content_id for q in ports.queue.queued] == ["awareness-01-why-drips-stall"]


def test_the_dispatcher_stops_before_the_invocation_runs_out_of_time(service, ports) -> None:
    for n in range(5):
        service.receive([identify(T0, user=f"u-{n}")], T0)
    report = dispatch(service, T0, time_left=lambda: 5.0)
    assert report.stopped_early
    assert report.ticked == 0
    assert dispatch(service, T0).ticked == 5  # still due: the next tick takes them


# --- the sender ------------------------------------------------------------------------------
def _queued_email(service, ports) -> SendRequest:
    service.receive([identify(T0, first_name="Ada", company="Northwind")], T0)
    dispatch(service, T0)
    queue: FakeQueue = ports.queue
    return queue.queued[-1]


def test_the_sender_renders_and_sends_the_queued_email(service, ports) -> None:
    request = _queued_email(service, ports)
    delivery = deliver(request, ports, fake_content(ports), T0)
    mailer: FakeMailer = ports.mailer
    assert delivery.outcome == "sent"
    [mail] = mailer.sent
    assert mail["to"] == "u-1@northwind.example"
    assert mail["subject"] in ("Why most nurture drips stall", 'The problem with "six emails over 30 days"')
    assert "Hi Ada," in str(mail["text"])
    assert mail["tags"] == {
        "sequence": "awareness",
        "content_id": "awareness-01-why-drips-stall",
        "lead_id": request.lead_id,  # SES returns the tags with its feedback: how a bounce finds its lead
        "variant": "0" if mail["subject"] == "Why most nurture drips stall" else "1",
    }
    assert [r.content_id for r in ports.leads.sent] == ["awareness-01-why-drips-stall"]


def test_every_email_sent_carries_one_click_unsubscribe_headers_and_a_link_that_opts_the_lead_out(
    service, ports
) -> None:
    # Given a queued email
    request = _queued_email(service, ports)
    # When the sender delivers it
    deliver(request, ports, fake_content(ports), T0)
    # Then the mailer got RFC 8058's two headers, pointing at the API's unsubscribe route with a signed token
    [mail] = ports.mailer.sent
    headers = dict(mail["headers"])
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = headers["List-Unsubscribe"].removeprefix("<").removesuffix(">")
    assert url.startswith(f"{ports.public_url}/v1/unsubscribe?token=")
    token = url.split("token=", 1)[1]
    assert ports.signer.verify(token, "unsubscribe", T0) == request.lead_id
    # And the same link is visible in both parts of the email
    assert f'href="{url}"' in str(mail["html"])
    assert f"Unsubscribe ({url})" in str(mail["text"])


def test_the_send_record_and_the_lead_view_say_which_subject_variant_the_lead_got(service, ports) -> None:
    from nurture.api.views import send_views
    from nurture.domain.rendering import choose_variant

    # Given twenty leads queued the first awareness email, which has two subject lines
    for n in range(20):
        service.receive([identify(T0, user=f"u-{n}")], T0)
    dispatch(service, T0)
    requests: list[SendRequest] = ports.queue.queued
    email = fake_content(ports).email(requests[0].content_id)
    assert len(email.meta.subject_options) == 2
    # When the sender delivers them
    for request in requests:
        deliver(request, ports, fake_content(ports), T0)
    # Then each lead got its own variant's subject, and its send record and the lead view say which
    variants = set()
    for request, mail in zip(requests, ports.mailer.sent, strict=True):
        variant = choose_variant(request.lead_id, email)
        variants.add(variant)
        assert mail["subject"] == email.meta.subject_options[variant]
        [record] = ports.leads.send_records(request.lead_id)
        [view] = send_views(ports.leads.get(request.lead_id).lead.sent, [record])
        assert (record.variant, view.delivery, view.variant) == (variant, "sent", variant)
    assert variants == {0, 1}  # both subjects went out (all twenty alike: one chance in half a million)


@pytest.mark.parametrize("event", ["Unsubscribed", "Email Complained"])
def test_an_email_queued_before_an_opt_out_is_never_sent(service, ports, event) -> None:
    request = _queued_email(service, ports)
    service.receive([track(event, T0)], T0)
    delivery = deliver(request, ports, fake_content(ports), T0)
    assert delivery.outcome == "skipped"
    assert ports.mailer.sent == []


def test_an_email_for_a_lead_gone_since_it_was_queued_is_skipped_not_failed(service, ports) -> None:
    # Given an email queued for a lead that is gone before the sender gets to it (merged into another lead)
    request = _queued_email(service, ports)
    ports.leads.items.pop(request.lead_id)
    # When the sender delivers it
    delivery = deliver(request, ports, fake_content(ports), T0)
    # Then it is skipped, saying why, rather than failing the queue message into retries and the DLQ
    assert (delivery.outcome, delivery.reason) == ("skipped", "the lead no longer exists")
    assert ports.mailer.sent == []


def test_a_broken_template_is_skipped_not_sent(service, ports, tmp_path) -> None:
    request = _queued_email(service, ports)
    broken = tmp_path / "content"
    (broken / "emails").mkdir(parents=True)
    (broken / "programme.yaml").write_text(starter_yaml())
    (broken / "emails" / f"{request.content_id}.md").write_text(
        "---\nid: x\nsequence: awareness\nsubject: Hi\n---\n{{ lead.first_name | nosuchfilter }}\n"
    )
    from nurture.adapters.content import FolderContent
    from nurture.pipeline.content import CachedContent

    delivery = deliver(request, ports, CachedContent(FolderContent(broken)), T0)
    assert (delivery.outcome, delivery.reason) == ("skipped", "broken content")
    assert ports.mailer.sent == []


def test_an_email_for_a_sequence_the_lead_has_left_is_not_sent(service, ports) -> None:
    request = _queued_email(service, ports)
    stored = next(iter(ports.leads.items.values()))
    ports.leads.items[stored.lead.lead_id] = replace(
        stored, lead=stored.lead.model_copy(update={"stage": Stage.CONSIDERATION})
    )
    assert deliver(request, ports, fake_content(ports), T0).outcome == "skipped"


class Killed(BaseException):
    """The invocation dies mid-send (a timeout, the process killed): no `except Exception` sees it."""


def test_a_send_request_delivered_again_sends_nothing_more(service, ports) -> None:
    request = _queued_email(service, ports)
    sender = Sender(FakeIdempotency())
    first = sender.send(request, ports, fake_content(ports), T0)
    # Again, and again as a later dispatch would queue it (another step and time, the same lead and email)
    again = sender.send(request, ports, fake_content(ports), T0 + days(1))
    requeued = request.model_copy(update={"step": request.step + 1, "due_at": T0 + days(2)})
    later = sender.send(requeued, ports, fake_content(ports), T0 + days(2))
    assert first.outcome == "sent"
    assert again == later == first  # the first delivery, replayed
    assert len(ports.mailer.sent) == 1


def test_the_record_that_guards_an_email_is_kept_a_year_under_a_name_that_survives_refactors(service, ports) -> None:
    # Given an email the sender delivered
    request = _queued_email(service, ports)
    records = FakeIdempotency()
    assert Sender(records).send(request, ports, fake_content(ports), T0).outcome == "sent"
    # Then its idempotency record outlives any redelivery or republished outbox for a year (powertools' default
    # is an hour), and is keyed `send#<hash>`, not by module and function name: a deploy that moves `deliver`
    # must still find the records of the emails sent before it
    [record] = records.records.values()
    assert record.idempotency_key.startswith("send#")
    assert record.expiry_timestamp is not None
    assert record.expiry_timestamp - time.time() >= 365 * 24 * 3600 - 60


def test_a_send_in_progress_elsewhere_is_blocked_not_sent(service, ports, monkeypatch) -> None:
    request = _queued_email(service, ports)
    sender = Sender(FakeIdempotency())
    counted: list[str] = []
    monkeypatch.setattr(metrics, "add_metric", lambda name, **_: counted.append(name))
    duplicates = []
    mailer_send = ports.mailer.send

    def send_while_a_duplicate_arrives(**email):
        duplicates.append(sender.send(request, ports, fake_content(ports), T0))  # a concurrent delivery of it
        return mailer_send(**email)

    monkeypatch.setattr(ports.mailer, "send", send_while_a_duplicate_arrives)
    assert sender.send(request, ports, fake_content(ports), T0).outcome == "sent"
    assert [d.outcome for d in duplicates] == ["blocked"]
    assert len(ports.mailer.sent) == 1
    assert counted.count("DuplicateSendsBlocked") == 1


def test_a_send_interrupted_mid_way_is_never_retried(service, ports, monkeypatch) -> None:
    request = _queued_email(service, ports)
    sender = Sender(FakeIdempotency())

    def die(**_):
        raise Killed

    monkeypatch.setattr(ports.mailer, "send", die)
    with pytest.raises(Killed):
        sender.send(request, ports, fake_content(ports), T0)
    monkeypatch.undo()
    # The retry finds the send still in progress: the email may be lost, never sent twice
    assert sender.send(request, ports, fake_content(ports), T0 + days(1)).outcome == "blocked"
    assert ports.mailer.sent == []


def test_one_dispatcher_run_queues_all_its_sends_together(service, ports) -> None:
    # Given 25 new leads whose first emails are due
    for n in range(25):
        service.receive([identify(T0, user=f"u-{n}")], T0)
    queue: FakeQueue = ports.queue
    queue.calls = 0
    # When the dispatcher runs
    dispatch(service, T0)
    # Then the 25 sends went out in full batches of ten (one SQS request each) as the run filled them, the
    # rest at its end, and no lead is left with unpublished effects
    assert (queue.calls, len(queue.queued)) == (3, 25)
    assert queue.sizes == [10, 10, 5]
    assert all(stored.outbox == () for stored in ports.leads.items.values())


def test_sends_held_for_a_batch_stay_in_the_outbox_when_publishing_fails(service, ports, monkeypatch) -> None:
    for n in range(3):
        service.receive([identify(T0, user=f"u-{n}")], T0)

    def unavailable(requests):
        raise RuntimeError("SQS is unavailable")

    monkeypatch.setattr(ports.queue, "enqueue", unavailable)
    with pytest.raises(RuntimeError):
        dispatch(service, T0)
    # The leads recorded their sends, and the sends wait in their outboxes for the next writer
    assert all([e.kind for e in stored.effects] == ["send"] for stored in ports.leads.items.values())


def test_one_batch_joining_two_anonymous_histories_to_a_lead_merges_both(service, ports) -> None:
    # Given two anonymous visitors (two devices) and a known lead
    service.receive([page("/pricing", T0, user=None, anonymous="a-phone")], T0)
    service.receive([page("/pricing/team", T0, user=None, anonymous="a-laptop")], T0)
    service.receive([identify(T0, user="u-1")], T0)
    # When one stream batch links both devices to the lead
    events = _stored(identify(T0, user="u-1", anonymous="a-phone"), identify(T0, user="u-1", anonymous="a-laptop"))
    scorer = CoalescingScorer(service, events, T0)
    for event in events:
        scorer.handle(event)
    # Then one lead remains, with both histories
    [stored] = ports.leads.items.values()
    assert stored.profiles == {"u#u-1", "a#a-phone", "a#a-laptop"}
    assert stored.lead.intent(starter(), T0) == 60


@pytest.mark.parametrize("failure", [TimeoutError("read timed out"), ConnectionResetError("connection dropped")])
def test_a_send_whose_answer_is_lost_is_never_sent_again(service, ports, monkeypatch, failure) -> None:
    # Given the mailer hands the email over and then loses SES's answer
    request = _queued_email(service, ports)
    sender = Sender(FakeIdempotency())
    counted: list[str] = []
    monkeypatch.setattr(metrics, "add_metric", lambda name, **_: counted.append(name))
    mailer_send = ports.mailer.send

    def sent_then_lost(**email):
        mailer_send(**email)
        raise failure

    monkeypatch.setattr(ports.mailer, "send", sent_then_lost)
    first = sender.send(request, ports, fake_content(ports), T0)
    monkeypatch.setattr(ports.mailer, "send", mailer_send)
    # When the queue delivers the request again
    again = sender.send(request, ports, fake_content(ports), T0 + days(1))
    # Then the person got one email, and the uncertainty is counted, not silent
    assert len(ports.mailer.sent) == 1
    assert first.outcome == again.outcome == "unconfirmed"
    assert counted.count("SendsUnconfirmed") == 1


def test_an_email_sent_whose_record_cannot_be_written_is_not_sent_again(service, ports, monkeypatch) -> None:
    # Given SES accepts the email but the send record's write is throttled
    request = _queued_email(service, ports)
    sender = Sender(FakeIdempotency())
    counted: list[str] = []
    monkeypatch.setattr(metrics, "add_metric", lambda name, **_: counted.append(name))

    def throttled(record):
        raise RuntimeError("ProvisionedThroughputExceededException")

    monkeypatch.setattr(ports.leads, "record_send", throttled)
    first = sender.send(request, ports, fake_content(ports), T0)
    monkeypatch.undo()
    # When the request is delivered again
    again = sender.send(request, ports, fake_content(ports), T0 + days(1))
    # Then one email went out, and the lost record is counted
    assert len(ports.mailer.sent) == 1
    assert first.outcome == again.outcome == "sent"
    assert "SendRecordsLost" in counted


def test_an_email_the_mailer_surely_did_not_send_is_retried(service, ports, monkeypatch) -> None:
    # Given SES refuses the first attempt (throttled: nothing went out)
    request = _queued_email(service, ports)
    sender = Sender(FakeIdempotency())
    mailer_send = ports.mailer.send

    def refused(**email):
        raise NotSent("Throttling")

    monkeypatch.setattr(ports.mailer, "send", refused)
    with pytest.raises(NotSent):
        sender.send(request, ports, fake_content(ports), T0)
    monkeypatch.setattr(ports.mailer, "send", mailer_send)
    # When the queue retries it
    retried = sender.send(request, ports, fake_content(ports), T0 + timedelta(minutes=1))
    # Then it is sent, once
    assert retried.outcome == "sent"
    assert len(ports.mailer.sent) == 1


def test_a_lead_that_runs_out_of_emails_is_counted_once_for_marketers(service, ports, monkeypatch) -> None:
    # Given a consideration lead (two pricing visits), and a dispatcher running every day for six weeks
    counted: list[str] = []
    monkeypatch.setattr(metrics, "add_metric", lambda name, **_: counted.append(name))
    lead_id = service.receive([identify(T0), page("/pricing", T0), page("/pricing/teams", T0)], T0)
    for day in range(50):
        if day == 20:  # still interested: it stays in consideration
            service.receive([page("/blog/still-reading", T0 + days(day))], T0 + days(day))
        dispatch(service, T0 + days(day))
    # When every consideration email has gone out
    lead = ports.leads.get(lead_id).lead
    assert lead.stage is Stage.CONSIDERATION
    assert lead.exhausted
    # Then the lead is counted as waiting on content once, not on every tick
    assert counted.count("LeadsWaitingOnContent") == 1
