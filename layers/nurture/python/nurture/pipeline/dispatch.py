"""The dispatcher's tick: find the leads that are due, and only those, and move them on, many at a time.

Reads the sharded due index (`due_shard`, `due_at <= now`), so the work per tick is proportional to
the leads that are due, never to all leads. Each due lead gets a clock tick through the lead
service, which sends what is due (via the send queue) and applies timeouts.

A tick is a few DynamoDB round trips per lead (read, conditional write, outbox removal) and little CPU, so
the leads are ticked by a pool of threads: `WORKERS` leads in flight at once, which is what lets a Monday
backlog of 10,000 due leads go through within one five-minute tick (docs/architecture.md, "Dispatching in
parallel"). Leads are independent (each write is conditional on the version read), so order does not matter.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from nurture.pipeline.leads import LeadService
from nurture.pipeline.ports import Conflict, StoredLead
from nurture.runtime.observability import Metric, count, logger, seconds

# Leads ticked at once: each tick waits on DynamoDB most of its time, so threads overlap the round trips. At
# most the AWS clients' connection pool (nurture.runtime.clients, 32), so no thread waits for a connection.
WORKERS = 32
# Stop taking new leads this long before the invocation's end: the leads in flight finish, their effects are
# published, and the lag gauge is measured.
STOP_MARGIN_SECONDS = 15.0
# The counts for the monthly review held by the run are added every this many leads (and when it stops): a run
# cut short by its timeout loses at most the counts since (counts are at most once: docs/reliability.md).
COUNTS_EVERY = 500


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


@runtime_checkable
class DueEntries(Protocol):
    """A due index that also says when each due lead became due (the index's sort key, returned with its id)."""

    def due_entries(self, shard: int, now: datetime) -> Iterator[tuple[str, datetime]]: ...


def oldest_due_seconds(index: DueIndex, shards: int, now: datetime) -> float:
    """How long the longest-waiting lead that is still due has been due; 0 when none is. One query of one item
    per shard, whatever the number of leads: it is what the "dispatcher falling behind" alarm reads."""
    times = [t for shard in range(shards) if (t := index.next_due(shard)) is not None]
    oldest = min(times, default=None)
    return _wait(oldest, now)


def _wait(oldest: datetime | None, now: datetime) -> float:
    return max((now - oldest).total_seconds(), 0.0) if oldest is not None else 0.0


def dispatch(
    service: LeadService,
    now: datetime,
    time_left: Callable[[], float] = lambda: 1e9,
    workers: int = WORKERS,
) -> DispatchReport:
    """Tick every due lead, `workers` at a time. Stops taking leads when the invocation is about to run out of
    time: the next tick picks up the rest, because those leads are still due."""
    report = DispatchReport()
    leads = service.ports.leads
    shards = range(service.ports.due_shards)
    entries = isinstance(leads, DueEntries)
    # What is still due after the tick, when the index said when each lead became due: the leads not ticked
    # (failed, or not reached) at that time, and the ticked ones whose write left them due.
    still_due: list[datetime] = []
    lock = threading.Lock()
    slots = threading.BoundedSemaphore(2 * workers)  # leads queued or in flight: time_left is checked as they go

    def read(shard: int) -> list[tuple[str, datetime | None]]:
        if isinstance(leads, DueEntries):
            return list(leads.due_entries(shard, now))
        return [(lead_id, None) for lead_id in leads.due(shard, now)]

    def tick(lead_id: str) -> StoredLead | None:
        try:
            return service.tick(lead_id, now)
        finally:
            slots.release()

    def done(lead_id: str, due_at: datetime | None, future: Future[StoredLead | None]) -> None:
        if future.cancelled():  # queued when the run stopped early: not ticked, still due
            with lock:
                report.due -= 1
                if due_at is not None:
                    still_due.append(due_at)
            return
        failure = future.exception()
        with lock:
            if failure is None:
                report.ticked += 1
                after = future.result()
                if after is not None and after.due_at is not None and after.due_at <= now:
                    still_due.append(after.due_at)
                return
            report.failed += 1  # still due, so the next tick tries again
            if due_at is not None:
                still_due.append(due_at)
        if not isinstance(failure, Conflict):
            logger.error("a due lead failed", exc_info=failure, extra={"lead_id": lead_id})

    with service.publishing_in_batches(), ThreadPoolExecutor(workers, thread_name_prefix="dispatch") as pool:
        due = [entry for shard in pool.map(read, shards) for entry in shard]  # the shards' Queries, in parallel
        if entries:  # the longest-waiting first, whatever their shard: a backlog longer than a run never starves one
            due.sort(key=lambda entry: entry[1] or now)
        for position, (lead_id, due_at) in enumerate(due):
            # Wait for a free slot no longer than the time left before the margin: slow DynamoDB must not carry
            # the run into its timeout (which would lose its metrics and the counts it holds).
            if not slots.acquire(timeout=max(0.0, time_left() - STOP_MARGIN_SECONDS)) or (
                time_left() < STOP_MARGIN_SECONDS
            ):
                report.stopped_early = True
                with lock:
                    still_due.extend(at for _, at in due[position:] if at is not None)
                pool.shutdown(wait=True, cancel_futures=True)  # leads queued but not started stay due
                break
            with lock:
                report.due += 1
            pool.submit(tick, lead_id).add_done_callback(functools.partial(done, lead_id, due_at))
            if (position + 1) % COUNTS_EVERY == 0:
                service.add_held_counts()
    count(Metric.LEADS_DUE, report.due)
    count(Metric.DISPATCH_FAILURES, report.failed)
    # Measured after the tick: leads it failed, or did not reach (stopped early), are still due and age.
    if entries:
        report.oldest_due_seconds = _wait(min(still_due, default=None), now)
    elif isinstance(leads, DueIndex):
        report.oldest_due_seconds = oldest_due_seconds(leads, service.ports.due_shards, now)
    if report.oldest_due_seconds is not None:
        seconds(Metric.OLDEST_DUE_SECONDS, report.oldest_due_seconds)
    return report
