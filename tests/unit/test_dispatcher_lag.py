"""Dispatcher lag: after each tick the dispatcher reports how long the longest-waiting lead still due has been due
(`OldestDueSeconds`), which the "dispatcher falling behind" alarm reads (above 15 minutes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest

from nurture.adapters.dynamodb import due_shard
from nurture.pipeline.dispatch import dispatch, oldest_due_seconds
from nurture.pipeline.leads import LeadService
from nurture.runtime.observability import Metric, metrics
from tests.fakes import FakeLeads, fake_ports
from tests.support import T0, identify, starter

# Messages carry explicit ids: tests.support numbers the others from one counter, which other tests' orderings see.


@dataclass
class IndexedLeads(FakeLeads):
    """FakeLeads with the DynamoDB due index's one-item read: the earliest next action of a shard."""

    def next_due(self, shard: int) -> datetime | None:
        times = [
            s.due_at
            for lead_id, s in self.items.items()
            if s.due_at is not None and due_shard(lead_id, self.due_shards) == str(shard)
        ]
        return min(times, default=None)


@pytest.fixture
def reported(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any, float]]:
    emitted: list[tuple[str, Any, float]] = []
    monkeypatch.setattr(metrics, "add_metric", lambda name, unit, value: emitted.append((name, unit, value)))
    return emitted


@pytest.fixture
def service() -> LeadService:
    ports = fake_ports()
    ports.leads = IndexedLeads()
    ids = iter(f"lead-{i}" for i in range(1, 100))
    return LeadService(ports, starter(), new_id=lambda: next(ids))


def _oldest_due(reported: list[tuple[str, Any, float]]) -> list[float]:
    return [value for name, _, value in reported if name == Metric.OLDEST_DUE_SECONDS]


def test_a_tick_that_moves_every_due_lead_on_reports_no_lag(service: LeadService, reported: list[Any]) -> None:
    # Given three new leads, due for their first email
    for n in range(3):
        service.receive([identify(T0, user=f"u-{n}", message_id=f"lag-{n}")], T0)
    # When the dispatcher ticks five minutes later
    report = dispatch(service, T0 + timedelta(minutes=5))
    # Then nothing is left due, and the gauge says so
    assert report.ticked == 3
    assert report.oldest_due_seconds == 0
    assert _oldest_due(reported) == [0]


def test_a_lead_that_keeps_failing_ages_past_the_alarm_s_15_minutes(
    service: LeadService, reported: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a lead due at T0 whose tick fails every time
    service.receive([identify(T0, user="u-stuck", message_id="lag-stuck")], T0)

    def failing(lead_id: str, now: datetime) -> None:
        raise RuntimeError("the lead's item cannot be read")

    monkeypatch.setattr(service, "tick", failing)
    # When the dispatcher ticks every five minutes for 20 minutes
    for minutes in (0, 5, 10, 15, 20):
        dispatch(service, T0 + timedelta(minutes=minutes))
    # Then the gauge grows with the lead's wait, and passes the alarm's threshold
    assert _oldest_due(reported) == [0, 300, 600, 900, 1200]


def test_leads_a_tick_did_not_reach_count_as_waiting(service: LeadService, reported: list[Any]) -> None:
    # Given a lead due at T0, and a tick that runs out of time before its first lead
    service.receive([identify(T0, user="u-late", message_id="lag-late")], T0)
    report = dispatch(service, T0 + timedelta(minutes=30), time_left=lambda: 0)
    # Then the lead is still due, 30 minutes on
    assert report.stopped_early
    assert report.oldest_due_seconds == 30 * 60


def test_the_lag_is_the_wait_of_the_earliest_due_lead_of_any_shard(service: LeadService) -> None:
    # Given two new leads, due for their first email since T0 and since seven minutes later
    service.receive([identify(T0, user="u-1", message_id="lag-1")], T0)
    later = T0 + timedelta(minutes=7)
    service.receive([identify(later, user="u-2", message_id="lag-2")], later)
    leads = service.ports.leads
    assert isinstance(leads, IndexedLeads)
    # Then ten minutes on, the lag is the first one's wait, not the second's
    assert oldest_due_seconds(leads, leads.due_shards, T0 + timedelta(minutes=10)) == 600
    # And before anything is due, there is none
    assert oldest_due_seconds(leads, leads.due_shards, T0 - timedelta(minutes=1)) == 0


def test_a_store_without_a_due_index_reports_no_gauge(reported: list[Any]) -> None:
    # Given the plain in-memory store (no index to ask; the DynamoDB table and the local stack have one)
    ports = fake_ports()
    service = LeadService(ports, starter(), new_id=lambda: "lead-1")
    service.receive([identify(T0, message_id="lag-plain")], T0)
    # When the dispatcher ticks
    report = dispatch(service, T0)
    # Then it reads only what it ticks, and reports no lag
    assert report.oldest_due_seconds is None
    assert _oldest_due(reported) == []
