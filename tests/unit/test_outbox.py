"""Each effect is published once, promptly (issue 7): under concurrent writers, and when a writer dies between
its write and its publish. Over the in-memory ports; the store contract (tests/contract) holds DynamoDB to the
same outbox semantics."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import timedelta

import pytest

from nurture.domain.journey import Effect, SalesAlert, Send, Transition
from nurture.domain.messages import Message
from nurture.domain.programme import Stage
from nurture.pipeline.dispatch import dispatch
from nurture.pipeline.leads import LeadService
from nurture.pipeline.ports import Conflict, Ports, SendRequest, StoredLead
from tests.fakes import FakeBus, FakeMetrics, FakeQueue, fake_ports
from tests.support import T0, identify, page, starter, track

LEASE = timedelta(minutes=5)  # constants.OUTBOX_LEASE_SECONDS
WRITERS, EVENTS = 8, 25


def _key(effect: Effect | SendRequest) -> str:
    """An occurrence's identity, computed here from its content (independent of the code under test)."""
    if isinstance(effect, SendRequest):
        return f"send/{effect.key}"
    if isinstance(effect, Send):
        return f"send/{effect.lead_id}/{effect.sequence.value}/{effect.content_id}"
    return f"{effect.kind}/" + hashlib.sha256(effect.model_dump_json().encode()).hexdigest()


def _entries(stored: StoredLead) -> Iterable[Effect]:
    return stored.effects


def _published(ports: Ports) -> Counter[str]:
    bus, queue, metrics = ports.bus, ports.queue, ports.metrics
    assert isinstance(bus, FakeBus)
    assert isinstance(queue, FakeQueue)
    assert isinstance(metrics, FakeMetrics)
    return Counter(_key(e) for e in [*bus.published, *queue.queued, *metrics.added])


def _saved(ports: Ports) -> set[str]:
    """Wrap the store so every effect that a write saved (an effect decided and committed) is recorded."""
    saved: set[str] = set()
    real = ports.leads.save

    def save(stored, expected_version, new_profiles=frozenset(), absorbed=None):
        real(stored, expected_version, new_profiles, absorbed)
        saved.update(_key(e) for e in _entries(stored))

    ports.leads.save = save  # type: ignore[method-assign]
    return saved


def _slow(ports: Ports) -> None:
    """Yield the thread after each read and each publish, so concurrent writers interleave between their read
    and their write, and between their write and their publish."""
    read, publish, enqueue = ports.leads.get, ports.bus.publish, ports.queue.enqueue

    def get(lead_id: str) -> StoredLead | None:
        stored = read(lead_id)
        time.sleep(0.0005)
        return stored

    def slow_publish(effects: Sequence[Effect]) -> None:
        time.sleep(0.001)
        publish(effects)

    def slow_enqueue(requests: Sequence[SendRequest]) -> None:
        time.sleep(0.001)
        enqueue(requests)

    ports.leads.get = get  # type: ignore[method-assign]
    ports.bus.publish = slow_publish  # type: ignore[method-assign]
    ports.queue.enqueue = slow_enqueue  # type: ignore[method-assign]


def _service(ports: Ports) -> LeadService:
    return LeadService(ports, starter(), new_id=lambda: "lead-1")


def test_concurrent_writers_publish_each_effect_decided_exactly_once() -> None:
    # Given a known lead, and eight scorers each applying 25 events to it at the same time
    ports = fake_ports()
    service = _service(ports)
    saved = _saved(ports)
    service.receive([identify(T0)], T0)
    _slow(ports)
    paths = ["/blog/a", "/pricing", "/pricing/team", "/case-studies/x", "/docs"]

    def messages(writer: int) -> list[Message]:
        at = [T0 + timedelta(seconds=writer * EVENTS + n + 1) for n in range(EVENTS)]
        batch: list[Message] = [page(paths[n % len(paths)], at[n]) for n in range(EVENTS)]
        if writer == 3:
            batch[10] = track("Demo Requested", at[10])
        if writer == 6:
            batch[20] = track("Unsubscribed", at[20])
        return batch

    errors: list[BaseException] = []

    def write(writer: int) -> None:
        for message in messages(writer):
            for _ in range(20):  # a scorer that gives up with a conflict is retried by Lambda
                try:
                    service.receive([message], message.timestamp)
                    break
                except Conflict:
                    continue
            else:
                errors.append(Conflict(f"writer {writer} never got through"))

    threads = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []

    # Then every effect saved with the lead was published, each exactly once, and nothing else was
    published = _published(ports)
    assert {key: n for key, n in published.items() if n > 1} == {}, "an effect was published more than once"
    assert set(published) >= saved - {_key(e) for e in _entries(ports.leads.get("lead-1"))}  # type: ignore[arg-type]
    [stored] = ports.leads.items.values()  # type: ignore[attr-defined]
    assert stored.outbox == (), "every effect went out"
    # (the counts for the monthly review are not in the outbox: added once each write went through, at most once)
    assert {key for key in published if not key.startswith("measure/")} == saved
    assert any(key.startswith("measure/") for key in published)
    # and, by kind: one bus event per stage change in the lead's history, one alert per alert decided
    bus: FakeBus = ports.bus  # type: ignore[assignment]
    transitions = [e for e in bus.published if isinstance(e, Transition)]
    alerts = [e for e in bus.published if isinstance(e, SalesAlert)]
    assert len(transitions) == len(stored.lead.history)
    assert [t.to_stage for t in transitions][-1] is Stage.OPTED_OUT
    assert len(alerts) == len({k for k in saved if k.startswith("alert/")}) >= 1


class Died(BaseException):
    """The scorer's Lambda timing out, or killed: not an Exception, so nothing catches it."""


def test_an_effect_left_by_a_writer_that_died_is_published_by_the_next_tick_after_its_lease(monkeypatch) -> None:
    # Given a lead that has nothing due (it opted out), whose scorer died after writing the opt-out's stage
    # change and before publishing it
    ports = fake_ports()
    service = _service(ports)
    service.receive([identify(T0)], T0)
    dispatch(service, T0)  # its first email
    published_before = _published(ports)
    opt_out = track("Unsubscribed", T0 + timedelta(hours=1))

    def died(effects: object) -> None:
        raise Died

    monkeypatch.setattr(service, "publish", died)
    with pytest.raises(Died):
        service.receive([opt_out], opt_out.timestamp)
    monkeypatch.undo()
    [stored] = ports.leads.items.values()  # type: ignore[attr-defined]
    assert [e.kind for e in _entries(stored)] == ["transition"]  # the stage change (its counts were added)
    [counted] = [e for e in ports.metrics.added if e.at == opt_out.timestamp]  # type: ignore[union-attr]
    published_before = _published(ports)

    # When Lambda redelivers the message (it changes nothing), and the dispatcher ticks within the lease
    service.receive([opt_out], opt_out.timestamp + timedelta(seconds=30))
    dispatch(service, opt_out.timestamp + LEASE - timedelta(seconds=1))
    # Then nobody races the (maybe still live) writer for its effect
    assert _published(ports) == published_before

    # When the dispatcher ticks after the lease, with no new message for the lead
    dispatch(service, opt_out.timestamp + LEASE)
    # Then the stage change went out, once, and the lead is no longer due
    new = _published(ports) - published_before
    [change] = [e for e in ports.bus.published if isinstance(e, Transition) and e.to_stage is Stage.OPTED_OUT]  # type: ignore[attr-defined]
    assert new == Counter({_key(change): 1})  # and its counts, added with the write, not again
    assert [e for e in ports.metrics.added if e.at == opt_out.timestamp] == [counted]  # type: ignore[union-attr]
    [stored] = ports.leads.items.values()  # type: ignore[attr-defined]
    assert stored.outbox == ()
    assert stored.due_at is None
    # and later ticks publish nothing more
    dispatch(service, opt_out.timestamp + LEASE + timedelta(minutes=5))
    dispatch(service, opt_out.timestamp + timedelta(days=30))
    assert _published(ports) - published_before == new


def test_a_writer_leaves_entries_within_their_lease_to_the_writer_that_saved_them(monkeypatch) -> None:
    # Given a writer that saved a sales alert and has not published it yet (slow, or dead: nobody can tell yet)
    ports = fake_ports()
    service = _service(ports)
    service.receive([identify(T0)], T0)
    real_publish = service.publish

    def died(effects: object) -> None:
        raise Died

    monkeypatch.setattr(service, "publish", died)
    demo = track("Demo Requested", T0 + timedelta(minutes=1))
    with pytest.raises(Died):
        service.receive([demo], demo.timestamp)
    monkeypatch.setattr(service, "publish", real_publish)
    before = _published(ports)
    # When another writer commits the lead within the lease
    service.receive([page("/blog/a", T0 + timedelta(minutes=2))], T0 + timedelta(minutes=2))
    # Then it leaves the stage change and the alert alone: a slow writer that goes on publishes them, once
    assert _published(ports) == before
    [stored] = ports.leads.items.values()  # type: ignore[attr-defined]
    assert [e.kind for e in _entries(stored)] == ["transition", "alert"]  # (the counts went with the write)
    # When a writer commits after the lease
    service.receive([page("/blog/b", demo.timestamp + LEASE)], demo.timestamp + LEASE)
    # Then it takes them over and publishes each, once
    new = _published(ports) - before
    kinds = sorted(k.split("/")[0] for k in new.elements() if not k.startswith("send/"))
    assert kinds == ["alert", "transition"]
    [stored] = ports.leads.items.values()  # type: ignore[attr-defined]
    assert stored.outbox == ()
