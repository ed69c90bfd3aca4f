"""The dispatcher's tick: find the leads that are due, and only those, and move them on.

Reads the sharded due index (`due_shard`, `due_at <= now`), so the work per tick is proportional to
the leads that are due, never to all leads. Each due lead gets a clock tick through the lead
service, which sends what is due (via the send queue) and applies timeouts.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from nurture.pipeline.leads import LeadService
from nurture.pipeline.ports import Conflict
from nurture.runtime.observability import Metric, count, logger, seconds


@dataclass
class DispatchReport:
    due: int = 0
    ticked: int = 0
    failed: int = 0
    stopped_early: bool = False
    oldest_due_seconds: float | None = None  # after the tick; None where the store has no due index to ask


@runtime_checkable
class DueIndex(Protocol):
    """The DynamoDB lead table's due index, read one item per shard: the earliest next action in a shard."""

    def next_due(self, shard: int) -> datetime | None: ...


def oldest_due_seconds(index: DueIndex, shards: int, now: datetime) -> float:
    """How long the longest-waiting lead that is still due has been due; 0 when none is. One query of one item
    per shard, whatever the number of leads: it is what the "dispatcher falling behind" alarm reads."""
    times = [t for shard in range(shards) if (t := index.next_due(shard)) is not None]
    oldest = min(times, default=None)
    return max((now - oldest).total_seconds(), 0.0) if oldest is not None else 0.0


def dispatch(service: LeadService, now: datetime, time_left: Callable[[], float] = lambda: 1e9) -> DispatchReport:
    """Tick every due lead. Stops early when the invocation is about to run out of time: the next tick
    picks up the rest, because those leads are still due."""
    report = DispatchReport()
    leads = service.ports.leads
    due = itertools.chain.from_iterable(leads.due(shard, now) for shard in range(service.ports.due_shards))
    with service.publishing_in_batches():  # sends go to SQS ten to a request, not one per lead
        for lead_id in due:
            if time_left() < 10.0:
                report.stopped_early = True
                break
            report.due += 1
            try:
                service.tick(lead_id, now)
                report.ticked += 1
            except Conflict:
                report.failed += 1  # still due, so the next tick tries again
            except Exception:
                report.failed += 1
                logger.exception("a due lead failed", extra={"lead_id": lead_id})
    count(Metric.LEADS_DUE, report.due)
    count(Metric.DISPATCH_FAILURES, report.failed)
    # Measured after the tick: leads it failed, or did not reach (stopped early), are still due and age.
    if isinstance(leads, DueIndex):
        report.oldest_due_seconds = oldest_due_seconds(leads, service.ports.due_shards, now)
        seconds(Metric.OLDEST_DUE_SECONDS, report.oldest_due_seconds)
    return report
