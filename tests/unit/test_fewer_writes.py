"""Writes at their floor (issue 12): counts for the monthly review leave no outbox entry to remove, and are added
once per batch (a stream batch, a sender invocation, a dispatcher run), not once per lead or email; each at most
once."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from nurture.domain.journey import Measured
from nurture.pipeline.dispatch import dispatch
from nurture.pipeline.leads import LeadService
from nurture.pipeline.ports import Ports, StoredEvent
from nurture.pipeline.score import CoalescingScorer
from nurture.pipeline.send import Sender
from tests.fakes import FakeIdempotency, FakeLeads, FakeMetrics, FakeQueue, fake_content, fake_ports
from tests.support import T0, days, identify, page, starter, track


class CountingLeads(FakeLeads):
    """FakeLeads that remembers every outbox removal."""

    def __init__(self) -> None:
        super().__init__()
        self.removals: list[tuple[str, frozenset[str]]] = []

    def clear_outbox(self, lead_id: str, effect_ids: Collection[str], version: int, due_at: datetime | None) -> None:
        self.removals.append((lead_id, frozenset(effect_ids)))
        super().clear_outbox(lead_id, effect_ids, version, due_at)


class CountingMetrics(FakeMetrics):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def add(self, measured: Sequence[Measured]) -> None:
        self.calls += 1
        super().add(measured)


def _ports() -> tuple[Ports, CountingLeads, CountingMetrics]:
    ports = fake_ports()
    leads, metrics = CountingLeads(), CountingMetrics()
    ports.leads, ports.metrics = leads, metrics
    return ports, leads, metrics


def test_a_write_whose_only_effects_are_counts_is_one_write() -> None:
    # Given a known lead in awareness
    ports, leads, metrics = _ports()
    service = LeadService(ports, starter(), new_id=lambda: "lead-1")
    service.receive([identify(T0)], T0)
    writes, removals, counted = leads.writes, len(leads.removals), len(metrics.added)
    # When its first email is delivered (counted for the monthly review, and nothing else happens)
    delivered = track("Email Delivered", T0 + days(1), content_id="awareness-01-why-drips-stall", sequence="awareness")
    service.receive([delivered], T0 + days(1))
    # Then the lead was written once, with no outbox entry to remove afterwards, and the counts were added
    assert leads.writes == writes + 1
    assert len(leads.removals) == removals
    assert len(metrics.added) > counted
    [stored] = leads.items.values()
    assert stored.outbox == ()


def test_a_stream_batch_adds_its_counts_in_one_call() -> None:
    # Given a stream batch of 12 events from six leads
    ports, _, metrics = _ports()
    ids = iter(f"lead-{n}" for n in range(100))
    service = LeadService(ports, starter(), new_id=lambda: next(ids))
    events = [
        StoredEvent(profile_id=f"u#u-{n}", message=message, received_at=T0)
        for n in range(6)
        for message in (identify(T0, user=f"u-{n}"), page("/pricing", T0, user=f"u-{n}"))
    ]
    scorer = CoalescingScorer(service, events, T0)
    # When it is scored within one block, as the scorer's processor does
    with service.counting_together():
        for event in events:
            scorer.handle(event)
    # Then its counts were added in one call, each lead's once
    assert metrics.calls == 1
    assert len({m.lead_id for m in metrics.added}) == 6


def test_a_dispatcher_run_adds_its_counts_in_one_call_and_a_sender_batch_too() -> None:
    ports, _, metrics = _ports()
    ids = iter(f"lead-{n}" for n in range(100))
    service = LeadService(ports, starter(), new_id=lambda: next(ids))
    for n in range(5):
        service.receive([identify(T0, user=f"u-{n}")], T0)
    metrics.calls = 0
    dispatch(service, T0)
    assert metrics.calls <= 1
    queue = ports.queue
    assert isinstance(queue, FakeQueue)
    # A sender invocation with five emails: five sent, their counts added in one call at its end
    metrics.calls = 0
    sender = Sender(FakeIdempotency())
    with sender.counting_together(ports):
        outcomes = [sender.send(r, ports, fake_content(ports), T0).outcome for r in queue.queued]
        assert metrics.calls == 0
    assert outcomes == ["sent"] * 5
    assert metrics.calls == 1
    assert len({m.lead_id for m in metrics.added if m.at == T0 and any("sent" in c[1] for c in m.counts)}) == 5
    # and outside a block, each email's counts are added as it goes
    metrics.calls = 0
    requeued = [r.model_copy(update={"content_id": "awareness-02-the-cost-of-a-cold-lead"}) for r in queue.queued[:1]]
    Sender(FakeIdempotency()).send(requeued[0], ports, fake_content(ports), T0)
    assert metrics.calls <= 1
