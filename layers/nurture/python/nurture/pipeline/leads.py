"""The lead service: applies messages, clock ticks and sales updates to stored leads.

Reads a lead, runs the pure journey, writes it back only if nobody changed it meanwhile (else reads
again), then publishes the effects. Effects are saved with the lead (an outbox, keyed by effect id)
before they are published, and each is published by the writer that saved it, which then removes
exactly those entries. A writer that dies in between leaves its entries behind: once their lease is
over, the lead is due, and the dispatcher's next tick (or any earlier writer) takes them over and
publishes them. See "Concurrency and the outbox" in docs/architecture.md.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from nurture.domain.identity import resolve
from nurture.domain.journey import Effect, JourneyInput, Lead, Measured, Send, Tick, Transition, merge, new_lead, step
from nurture.domain.messages import Message
from nurture.domain.programme import Programme
from nurture.pipeline.ports import Conflict, Pending, Ports, SendRequest, StoredLead
from nurture.runtime.observability import Metric, count, logger

MAX_ATTEMPTS = 8
BACK_OFF_BASE_SECONDS = 0.001
BACK_OFF_CAP_SECONDS = 0.05
_PUBLISHED = {"transition": Metric.STAGE_TRANSITIONS, "send": Metric.SENDS_QUEUED, "alert": Metric.SALES_ALERTS}
# SQS and EventBridge take ten entries a request: a batch block publishes as soon as it holds that many of either.
PUBLISH_BATCH = 10

Held = list[tuple[StoredLead, tuple[Pending, ...]]]


@dataclass
class _Batch:
    """What a `publishing_in_batches` block holds: the leads written and their entries to publish, the counts for
    the monthly review, and this invocation's metrics. The dispatcher's worker threads add to it, under its lock
    (powertools' metrics are not written from threads: they are emitted once, at the block's end)."""

    publishing: bool = True  # False: effects are published at once, only the counts and metrics are held
    lock: threading.Lock = field(default_factory=threading.Lock)
    held: Held = field(default_factory=list)
    sends: int = 0
    others: int = 0
    measured: list[Measured] = field(default_factory=list)
    metrics: Counter[Metric] = field(default_factory=Counter)

    def hold(self, after: StoredLead, owned: tuple[Pending, ...]) -> Held:
        """Hold a lead's entries; every entry held, once a full request of sends or of bus events is."""
        with self.lock:
            self.held.append((after, owned))
            self.sends += sum(isinstance(p.effect, Send) for p in owned)
            self.others += sum(not isinstance(p.effect, Send | Measured) for p in owned)
            if self.sends < PUBLISH_BATCH and self.others < PUBLISH_BATCH:
                return []
            return self.take()

    def take(self) -> Held:
        held, self.held, self.sends, self.others = self.held, [], 0, 0
        return held


class LeadService:
    def __init__(self, ports: Ports, programme: Programme, new_id: Callable[[], str] | None = None) -> None:
        self.ports = ports
        self.programme = programme
        self.new_id = new_id or (lambda: uuid.uuid4().hex)
        self._batch: _Batch | None = None

    def receive(self, messages: Sequence[Message], now: datetime) -> str:
        """Apply messages that share a profile to their lead (created, or merged, as needed). Returns its id.

        A message names at most two profiles (userId, anonymousId), so it joins at most two leads. Messages
        are applied one profile set at a time, in time order, so a batch that links a lead to two anonymous
        visitors folds them in one after the other. Usually all share one set: one read, one write."""
        ordered = sorted(messages, key=lambda m: (m.timestamp, m.message_id))
        by_profiles: dict[tuple[str, ...], list[Message]] = {}
        for message in ordered:
            by_profiles.setdefault(message.profile_ids, []).append(message)
        lead_id = ""
        for group in by_profiles.values():
            lead_id = self._receive_with_retries(group, frozenset(group[0].profile_ids), now)
        return lead_id

    def _receive_with_retries(self, ordered: Sequence[Message], profiles: frozenset[str], now: datetime) -> str:
        for attempt in range(MAX_ATTEMPTS):
            links = self.ports.leads.leads_for(profiles)
            try:
                return self._receive(ordered, profiles, links, now)
            except Conflict:
                self._metric(Metric.LEAD_WRITE_CONFLICTS)
                _back_off(attempt)
        raise Conflict(f"gave up after {MAX_ATTEMPTS} attempts")

    def tick(self, lead_id: str, now: datetime) -> StoredLead | None:
        """A clock tick: the lead as written (or as it was, when nothing changed); None when it is gone."""
        return self.apply(lead_id, [Tick()], now)

    def apply(self, lead_id: str, inputs: Sequence[JourneyInput], now: datetime) -> StoredLead | None:
        """Apply inputs to an existing lead; None when the lead is gone (merged or deleted)."""
        for attempt in range(MAX_ATTEMPTS):
            stored = self.ports.leads.get(lead_id)
            if stored is None:
                return None
            lead, effects = self._run(stored.lead, inputs, now)
            try:
                return self._commit(stored, lead, effects, stored.profiles, now)
            except Conflict:
                self._metric(Metric.LEAD_WRITE_CONFLICTS)
                _back_off(attempt)
        raise Conflict(f"gave up on lead {lead_id} after {MAX_ATTEMPTS} attempts")

    def _receive(
        self, messages: Sequence[Message], profiles: frozenset[str], links: dict[str, str], now: datetime
    ) -> str:
        # One identity rule for every runtime (domain/identity.py): the userId's lead wins.
        found = resolve(profiles, links, self.new_id)
        stored = None if found.is_new else self.ports.leads.get(found.lead_id)
        absorbed = self.ports.leads.get(found.absorbed) if found.absorbed else None
        if (not found.is_new and stored is None) or (found.absorbed and absorbed is None):
            raise Conflict("a linked lead vanished")  # merged away meanwhile: resolve the links again
        lead = stored.lead if stored else new_lead(found.lead_id)
        known = stored.profiles if stored else frozenset()
        # Every profile of the absorbed lead moves with it (more than one only if a device was shared).
        new_profiles = found.link | (absorbed.profiles if absorbed else frozenset())
        if absorbed is not None:
            lead = merge(lead, absorbed.lead, self.programme)
            self._metric(Metric.LEADS_MERGED)
        lead, effects = self._run(lead, messages, now)
        self._commit(
            stored, lead, effects, known | new_profiles, now, new_profiles=new_profiles - known, absorbed=absorbed
        )
        return lead.lead_id

    def _run(self, lead: Lead, inputs: Sequence[JourneyInput], now: datetime) -> tuple[Lead, list[Effect]]:
        effects: list[Effect] = []
        for given in inputs:
            outcome = step(lead, given, self.programme, now)
            lead = outcome.lead
            effects += outcome.effects
        return lead, effects

    def _commit(
        self,
        before: StoredLead | None,
        lead: Lead,
        effects: list[Effect],
        profiles: frozenset[str],
        now: datetime,
        new_profiles: frozenset[str] = frozenset(),
        absorbed: StoredLead | None = None,
    ) -> StoredLead:
        """Write the lead at the next version with its effects in the outbox, then publish and remove them.

        This writer owns what it adds, and the entries it takes over: those whose lease ran out (their
        writer died before publishing). It re-stamps those in the same conditional write, so of two writers
        only the one whose write wins takes them over. Entries another writer saved within their lease are
        carried untouched: that writer publishes and removes them.

        The counts for the monthly review (`Measured`) are not put in the outbox: they are added once the write
        went through. Counts are at most once (a writer that dies after its write loses them, as a lost count
        is a smaller error than a doubled one), so they need no entry, and a write whose only effects are counts
        needs no removal afterwards: one request, not two."""
        measured = [e for e in effects if isinstance(e, Measured)]
        published = [e for e in effects if not isinstance(e, Measured)]
        carried = (before.outbox if before else ()) + (absorbed.outbox if absorbed else ())
        stale = tuple(p for p in carried if p.expires_at <= now)
        kept = tuple(p for p in carried if p.expires_at > now)
        due_at = _due(lead.next_action_at(self.programme), kept)
        unchanged = before is not None and lead == before.lead and not new_profiles and absorbed is None
        if unchanged and not effects and not stale and before is not None and before.due_at == due_at:
            return before  # nothing changed: no write at all
        known = {p.id for p in kept}
        mine: dict[str, Pending] = {}
        for effect in (*(p.effect for p in stale), *published):
            pending = Pending(effect, now)
            if pending.id not in known:
                mine.setdefault(pending.id, pending)
        owned = tuple(mine.values())
        after = StoredLead(
            lead=lead,
            version=(before.version if before else 0) + 1,
            profiles=profiles,
            outbox=kept + owned,
            due_at=_due(lead.next_action_at(self.programme), kept + owned),
        )
        self.ports.leads.save(after, before.version if before else None, new_profiles, absorbed)
        try:
            if lead.exhausted and not (before is not None and before.lead.exhausted):
                # Counted once, when the lead starts waiting: marketers add emails to that sequence.
                self._metric(Metric.LEADS_WAITING_ON_CONTENT)
                logger.info("lead waits on new content", extra={"lead_id": lead.lead_id, "sequence": lead.stage})
            if owned:
                batch = self._batch
                if batch is None or not batch.publishing:
                    self._flush([(after, owned)])
                elif full := batch.hold(after, owned):
                    self._flush(full)  # by the thread that filled the batch: the others go on ticking
        finally:
            # After the removal (which moves the lead's version on: the sooner, the fewer writers it makes read
            # again), and whether or not publishing went through: the write that decided them is in.
            self._add_counts(measured)
        return after

    def _flush(self, held: Held) -> None:
        """Publish the held entries, then remove them from their leads (one UpdateItem per lead)."""
        self.publish([p.effect for _, owned in held for p in owned])
        for after, owned in held:
            self._remove(after, owned)
        # Entries saved before counts left the outbox may still hold some: added once their entries are gone.
        self._count([p.effect for _, owned in held for p in owned])

    def _add_counts(self, measured: Sequence[Effect]) -> None:
        batch = self._batch
        if batch is None:
            self._count(measured)
        elif measured:
            with batch.lock:
                batch.measured += [e for e in measured if isinstance(e, Measured)]

    def add_held_counts(self) -> None:
        """Add the counts for the monthly review held so far in a batch block (the dispatcher does every few hundred
        leads): a block cut short by a timeout then loses only the counts held since."""
        batch = self._batch
        if batch is None:
            return
        with batch.lock:
            measured, batch.measured = batch.measured, []
        self._count(measured)

    def _metric(self, metric: Metric, value: int = 1) -> None:
        """Count an invocation metric; within a batch block, held and emitted once at its end (from one thread)."""
        batch = self._batch
        if batch is None:
            count(metric, value)
            return
        with batch.lock:
            batch.metrics[metric] += value

    def _remove(self, after: StoredLead, owned: tuple[Pending, ...]) -> None:
        """Remove the published entries; the lead is then due for its next action and the entries left."""
        left = tuple(p for p in after.outbox if p not in owned)
        due_at = _due(after.lead.next_action_at(self.programme), left)
        self.ports.leads.clear_outbox(after.lead.lead_id, [p.id for p in owned], after.version, due_at)

    @contextmanager
    def publishing_in_batches(self) -> Iterator[None]:
        """Hold the effects of the leads written in the block and publish them in full batches (the dispatcher
        ticks many leads a run, from several threads): ten sends to a request as soon as ten are held, the rest
        at the block's end. An outbox entry is removed only after its effect went out; if publishing fails, the
        entries stay, and the leads are due when their lease ends. The counts for the monthly review are added
        together at the end (one UpdateItem per month and counter group, not one per lead), and so are the
        invocation's metrics."""
        with self._batching(_Batch(publishing=True)):
            yield

    @contextmanager
    def counting_together(self) -> Iterator[None]:
        """Publish each write's effects at once, but add the counts for the monthly review of every write in the
        block together at its end (a stream batch: one UpdateItem per month and counter group, not one per lead).
        Counts are at most once: a block cut short loses its counts, never adds them twice."""
        with self._batching(_Batch(publishing=False)):
            yield

    @contextmanager
    def _batching(self, batch: _Batch) -> Iterator[None]:
        self._batch = batch
        try:
            yield
        finally:
            self._batch = None
            try:
                if rest := batch.take():
                    self._flush(rest)
            finally:
                self._count(batch.measured)
                for metric, value in batch.metrics.items():
                    count(metric, value)

    def publish(self, effects: Sequence[Effect]) -> None:
        """Sends to the queue, stage changes and alerts to the bus. The counts (`Measured`) are added apart, by
        `_count`."""
        sends = [SendRequest.of(e) for e in effects if isinstance(e, Send)]
        others = [e for e in effects if not isinstance(e, Send | Measured)]
        if sends:
            self.ports.queue.enqueue(sends)
        if others:
            self.ports.bus.publish(others)
        for effect in effects:
            if effect.kind in _PUBLISHED:
                self._metric(_PUBLISHED[effect.kind])
            if isinstance(effect, Transition):
                self._metric(Metric(f"Entered{effect.to_stage.value.title().replace('_', '')}"))
        logger.debug("published effects", extra={"count": len(effects)})

    def _count(self, effects: Sequence[Effect]) -> None:
        """Add the counts for the monthly review. A failure loses them (logged), never fails the write: counters
        cannot tell a repeat, so counts are at most once."""
        measured = [e for e in effects if isinstance(e, Measured)]
        if not measured or self.ports.metrics is None:
            return
        try:
            self.ports.metrics.add(measured)
        except Exception:
            logger.exception("counts for the monthly review were lost", extra={"count": len(measured)})


def _back_off(attempt: int) -> None:
    """A short random wait before reading a lead again after losing a write to another writer: writers that
    collided do not all read and write again at the same moment (full jitter, 1 ms doubling, at most 50 ms)."""
    time.sleep(random.uniform(0, min(BACK_OFF_CAP_SECONDS, BACK_OFF_BASE_SECONDS * 2**attempt)))  # noqa: S311


def _due(next_action: datetime | None, outbox: tuple[Pending, ...]) -> datetime | None:
    """When the dispatcher must look at the lead: its next action, or sooner when an outbox entry's lease ends
    (so an effect whose writer died is published by the next tick after it, never left for a later message)."""
    times = [t for t in (next_action, *(p.expires_at for p in outbox)) if t is not None]
    return min(times) if times else None
