"""The dispatcher ticks due leads in parallel (issue 12): many at once, each exactly once, with every effect
published once even when workers race each other, another dispatcher, or a publish that fails."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest

from nurture.adapters.dynamodb import due_shard
from nurture.pipeline.dispatch import dispatch
from nurture.pipeline.leads import LeadService
from nurture.pipeline.ports import Ports, StoredLead
from nurture.runtime.observability import Metric, metrics
from tests.fakes import FakeLeads, FakeQueue, fake_ports
from tests.support import T0, identify, starter

LEASE = timedelta(minutes=5)  # constants.OUTBOX_LEASE_SECONDS


def _leads(n: int) -> tuple[Ports, LeadService]:
    ports = fake_ports()
    ids = iter(f"lead-{i:03d}" for i in range(10_000))
    service = LeadService(ports, starter(), new_id=lambda: next(ids))
    for i in range(n):
        service.receive([identify(T0, user=f"u-{i}", message_id=f"par-{i}")], T0)
    return ports, service


def _queued(ports: Ports) -> Counter[str]:
    queue = ports.queue
    assert isinstance(queue, FakeQueue)
    return Counter(request.key for request in queue.queued)


def _due(ports: Ports, now: datetime) -> list[str]:
    return [lead for shard in range(ports.due_shards) for lead in ports.leads.due(shard, now)]


def test_due_leads_are_ticked_many_at_a_time() -> None:
    # Given 64 due leads, and a store whose reads wait until eight of them are in flight together
    ports, service = _leads(64)
    together = threading.Barrier(8, timeout=5)
    read = ports.leads.get

    def get(lead_id: str) -> StoredLead | None:
        together.wait()  # one lead at a time never gets past this: the barrier breaks, the tick fails
        return read(lead_id)

    ports.leads.get = get  # type: ignore[method-assign]
    # When the dispatcher ticks with eight workers
    report = dispatch(service, T0, workers=8)
    # Then every lead was ticked, none failed: eight reads were in flight at once
    assert (report.due, report.ticked, report.failed) == (64, 64, 0)
    assert not together.broken


def test_one_worker_is_one_lead_at_a_time() -> None:
    # The same check with one worker fails: what the test above measures is the parallelism
    ports, service = _leads(8)
    together = threading.Barrier(2, timeout=0.2)
    read = ports.leads.get

    def get(lead_id: str) -> StoredLead | None:
        together.wait()
        return read(lead_id)

    ports.leads.get = get  # type: ignore[method-assign]
    report = dispatch(service, T0, workers=1)
    assert report.failed == 8


def test_every_due_lead_is_ticked_exactly_once_and_its_effects_published_once() -> None:
    # Given 300 due leads
    ports, service = _leads(300)
    # When the dispatcher ticks them with 32 workers
    report = dispatch(service, T0, workers=32)
    # Then each lead got its first email queued once, in requests of at most ten, and nothing is left behind
    assert (report.due, report.ticked, report.failed) == (300, 300, 0)
    queued = _queued(ports)
    assert len(queued) == 300
    assert set(queued.values()) == {1}
    assert max(ports.queue.sizes) <= 10  # type: ignore[attr-defined]
    assert all(stored.outbox == () for stored in ports.leads.items.values())  # type: ignore[attr-defined]
    assert _due(ports, T0) == []


def test_two_overlapping_dispatchers_queue_each_email_once() -> None:
    # Given 200 due leads, and two dispatcher invocations running at the same time (a schedule's retry, a slow
    # run overlapping the next), each with its own service, on the same store
    ports, _ = _leads(200)
    services = [LeadService(ports, starter()) for _ in range(2)]
    reports: list[Any] = []
    start = threading.Barrier(2)

    def run(service: LeadService) -> None:
        start.wait()
        reports.append(dispatch(service, T0, workers=16))

    threads = [threading.Thread(target=run, args=(s,)) for s in services]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then every email was queued exactly once (conditional writes: the loser reads again, finds it done)
    queued = _queued(ports)
    assert len(queued) == 200
    assert set(queued.values()) == {1}
    assert sum(r.failed for r in reports) == 0
    assert all(stored.outbox == () for stored in ports.leads.items.values())  # type: ignore[attr-defined]


def test_a_publish_that_fails_mid_run_loses_no_send_and_doubles_none() -> None:
    # Given 40 due leads, and a send queue that fails its second request (a worker's full batch of ten)
    ports, service = _leads(40)
    queue = ports.queue
    assert isinstance(queue, FakeQueue)
    real = queue.enqueue
    calls = {"n": 0}

    def flaky(requests: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("SQS is unavailable")
        real(requests)

    queue.enqueue = flaky  # type: ignore[method-assign]
    dispatch(service, T0, workers=8)
    # Then the ten sends of the failed request wait in their leads' outboxes, nothing else does
    waiting = [s for s in ports.leads.items.values() if s.outbox]  # type: ignore[attr-defined]
    assert len(waiting) == 10
    assert len(_queued(ports)) == 30
    # And the first tick after their lease publishes them, once: every lead has its email, once
    dispatch(service, T0 + LEASE, workers=8)
    queued = _queued(ports)
    assert len(queued) == 40
    assert set(queued.values()) == {1}
    assert all(stored.outbox == () for stored in ports.leads.items.values())  # type: ignore[attr-defined]


def test_metrics_are_emitted_from_the_invoking_thread_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # powertools' Metrics are not thread-safe: the workers' counts are held and emitted once, at the run's end
    _, service = _leads(50)
    emitted: list[tuple[str, float, int]] = []
    monkeypatch.setattr(
        metrics, "add_metric", lambda name, unit, value: emitted.append((name, value, threading.get_ident()))
    )
    dispatch(service, T0, workers=8)
    assert {ident for *_, ident in emitted} == {threading.get_ident()}
    totals = Counter[str]()
    for name, value, _ in emitted:
        totals[name] += int(value)
    assert totals[Metric.SENDS_QUEUED] == 50
    assert totals[Metric.LEADS_DUE] == 50


@dataclass
class EntriesLeads(FakeLeads):
    """FakeLeads with the DynamoDB due index's entries (id and due time); never asked for a shard's earliest."""

    def due_entries(self, shard: int, now: datetime) -> Iterator[tuple[str, datetime]]:
        for lead_id, stored in list(self.items.items()):
            if stored.due_at is not None and stored.due_at <= now and due_shard(lead_id, self.due_shards) == str(shard):
                self.reads += 1
                yield lead_id, stored.due_at

    def next_due(self, shard: int) -> datetime | None:
        raise AssertionError("the lag is known from the tick's own reads")


def test_the_lag_after_a_tick_comes_from_its_own_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given two leads due since T0, one of which fails to tick
    ports = fake_ports()
    ports.leads = EntriesLeads()
    ids = iter(["lead-ok", "lead-stuck"])
    service = LeadService(ports, starter(), new_id=lambda: next(ids))
    for n in range(2):
        service.receive([identify(T0, user=f"u-{n}", message_id=f"lag-{n}")], T0)
    real = service.tick

    def tick(lead_id: str, now: datetime) -> StoredLead | None:
        if lead_id == "lead-stuck":
            raise RuntimeError("the lead's item cannot be read")
        return real(lead_id, now)

    monkeypatch.setattr(service, "tick", tick)
    # When the dispatcher ticks ten minutes later
    report = dispatch(service, T0 + timedelta(minutes=10))
    # Then the lag is the stuck lead's wait, known without a second read of the index
    assert (report.ticked, report.failed) == (1, 1)
    assert report.oldest_due_seconds == 600
    # And once it ticks, there is none
    monkeypatch.setattr(service, "tick", real)
    assert dispatch(service, T0 + timedelta(minutes=15)).oldest_due_seconds == 0


def test_slow_storage_stops_the_run_before_its_timeout_and_leaves_the_rest_due() -> None:
    # Given 200 due leads, a store that takes 50 ms a read, and an invocation with 20.3 s left on a clock that
    # runs 1 s for every lead read (the 15 s margin is reached after a few reads)
    ports, service = _leads(200)
    read = ports.leads.get
    elapsed = [0.0]
    lock = threading.Lock()

    def slow_get(lead_id: str) -> StoredLead | None:
        threading.Event().wait(0.05)
        with lock:
            elapsed[0] += 1.0
        return read(lead_id)

    ports.leads.get = slow_get  # type: ignore[method-assign]
    # When the dispatcher runs with 4 workers
    report = dispatch(service, T0, time_left=lambda: 20.3 - elapsed[0], workers=4)
    # Then it stopped early: the leads it did not start are neither ticked nor counted as due, and stay due
    assert report.stopped_early
    assert report.ticked + report.failed == report.due
    assert report.due < 40
    assert len(_due(ports, T0)) == 200 - report.ticked
    # and the next run, with time enough, ticks the rest, each email queued once
    ports.leads.get = read  # type: ignore[method-assign]
    rest = dispatch(service, T0)
    assert report.ticked + rest.ticked == 200
    assert set(_queued(ports).values()) == {1}


def test_the_longest_waiting_leads_are_ticked_first_whatever_their_shard() -> None:
    # Given leads due at different times, and a run that can take only a few of them
    ports, service = _leads(48)
    leads = ports.leads
    assert isinstance(leads, FakeLeads)
    order = sorted(_due(ports, T0))
    for i, lead_id in enumerate(reversed(order)):  # the last in shard order waited longest
        stored = leads.get(lead_id)
        assert stored is not None
        leads.items[lead_id] = StoredLead(
            lead=stored.lead,
            version=stored.version,
            profiles=stored.profiles,
            outbox=stored.outbox,
            due_at=T0 - timedelta(hours=48 - i),
        )
    waited = {lead_id: leads.items[lead_id].due_at for lead_id in order}
    ticked: list[str] = []
    read = leads.get

    def get(lead_id: str) -> StoredLead | None:
        ticked.append(lead_id)
        return read(lead_id)

    leads.get = get  # type: ignore[method-assign]

    def due_entries(shard: int, now: datetime) -> Iterator[tuple[str, datetime | None]]:
        return ((lead_id, leads.items[lead_id].due_at) for lead_id in leads.due(shard, now))

    leads.due_entries = due_entries  # type: ignore[attr-defined]  # what the DynamoDB index answers
    left = iter([100.0] * 10 + [0.0] * 1000)
    dispatch(service, T0, time_left=lambda: next(left), workers=1)
    longest = sorted(order, key=lambda lead_id: waited[lead_id] or T0)[: len(set(ticked))]
    assert set(ticked) == set(longest)


def test_a_run_waiting_on_slow_ticks_stops_at_its_margin_and_drops_the_leads_not_started() -> None:
    # Given due leads whose reads take a second each, one worker, and 15.3 s left (the margin is 15 s)
    ports, service = _leads(5)
    read = ports.leads.get

    def slow_get(lead_id: str) -> StoredLead | None:
        threading.Event().wait(1.0)
        return read(lead_id)

    ports.leads.get = slow_get  # type: ignore[method-assign]
    started = time.monotonic()
    # When the dispatcher runs: one lead in flight, one queued, and no free slot for the third
    report = dispatch(service, T0, time_left=lambda: 15.3 - (time.monotonic() - started), workers=1)
    # Then it stopped at the margin instead of waiting for a slot, and the queued lead was never started
    assert report.stopped_early
    assert (report.due, report.ticked) == (1, 1)
    assert len(_due(ports, T0)) == 4
