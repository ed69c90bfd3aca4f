"""The lead service: applies messages, clock ticks and sales updates to stored leads.

Reads a lead, runs the pure journey, writes it back only if nobody changed it meanwhile (else reads
again), then publishes the effects. Effects are saved with the lead (an outbox) before they are
published, so a crash between the write and the publish loses nothing: the next writer sends them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from nurture.domain.identity import resolve
from nurture.domain.journey import Effect, JourneyInput, Lead, Send, Tick, merge, new_lead, step
from nurture.domain.messages import Message
from nurture.domain.programme import Programme
from nurture.pipeline.ports import Conflict, Ports, SendRequest, StoredLead
from nurture.runtime.observability import Metric, count, logger

MAX_ATTEMPTS = 8
_PUBLISHED = {"transition": Metric.STAGE_TRANSITIONS, "send": Metric.SENDS_QUEUED, "alert": Metric.SALES_ALERTS}


class LeadService:
    def __init__(self, ports: Ports, programme: Programme, new_id: Callable[[], str] | None = None) -> None:
        self.ports = ports
        self.programme = programme
        self.new_id = new_id or (lambda: uuid.uuid4().hex)
        self._held: list[tuple[str, int, tuple[Effect, ...]]] | None = None

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
        for _ in range(MAX_ATTEMPTS):
            links = self.ports.leads.leads_for(profiles)
            try:
                return self._receive(ordered, profiles, links, now)
            except Conflict:
                count(Metric.LEAD_WRITE_CONFLICTS)
        raise Conflict(f"gave up after {MAX_ATTEMPTS} attempts")

    def tick(self, lead_id: str, now: datetime) -> None:
        self.apply(lead_id, [Tick()], now)

    def apply(self, lead_id: str, inputs: Sequence[JourneyInput], now: datetime) -> StoredLead | None:
        """Apply inputs to an existing lead; None when the lead is gone (merged or deleted)."""
        for _ in range(MAX_ATTEMPTS):
            stored = self.ports.leads.get(lead_id)
            if stored is None:
                return None
            lead, effects = self._run(stored.lead, inputs, now)
            try:
                return self._commit(stored, lead, effects, stored.profiles)
            except Conflict:
                count(Metric.LEAD_WRITE_CONFLICTS)
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
            lead = merge(lead, absorbed.lead)
            count(Metric.LEADS_MERGED)
        lead, effects = self._run(lead, messages, now)
        self._commit(stored, lead, effects, known | new_profiles, new_profiles=new_profiles - known, absorbed=absorbed)
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
        new_profiles: frozenset[str] = frozenset(),
        absorbed: StoredLead | None = None,
    ) -> StoredLead:
        """Write the lead at the next version with its effects in the outbox, then publish and clear them."""
        if before is not None and lead == before.lead and not effects and not new_profiles and absorbed is None:
            return before  # nothing changed: no write at all
        carried = (before.outbox if before else ()) + (absorbed.outbox if absorbed else ())
        after = StoredLead(
            lead=lead,
            version=(before.version if before else 0) + 1,
            profiles=profiles,
            outbox=carried + tuple(effects),
            due_at=lead.next_action_at(self.programme),
        )
        self.ports.leads.save(after, before.version if before else None, new_profiles, absorbed)
        if lead.exhausted and not (before is not None and before.lead.exhausted):
            # Counted once, when the lead starts waiting: marketers add emails to that sequence.
            count(Metric.LEADS_WAITING_ON_CONTENT)
            logger.info("lead waits on new content", extra={"lead_id": lead.lead_id, "sequence": lead.stage})
        if after.outbox:
            if self._held is not None:
                self._held.append((lead.lead_id, after.version, after.outbox))
            else:
                self.publish(after.outbox)
                self.ports.leads.clear_outbox(lead.lead_id, after.version)
        return after

    @contextmanager
    def publishing_in_batches(self) -> Iterator[None]:
        """Hold the effects of every lead written in the block and publish them together at its end, in
        full batches (the dispatcher ticks many leads a run). An outbox is cleared only after its effects
        went out; if publishing fails, they stay in the outbox for the lead's next writer."""
        self._held = []
        try:
            yield
        finally:
            held, self._held = self._held, None
            if held:
                self.publish([effect for _, _, outbox in held for effect in outbox])
                for lead_id, version, _ in held:
                    self.ports.leads.clear_outbox(lead_id, version)

    def publish(self, effects: Sequence[Effect]) -> None:
        sends = [SendRequest.of(e) for e in effects if isinstance(e, Send)]
        others = [e for e in effects if not isinstance(e, Send)]
        if sends:
            self.ports.queue.enqueue(sends)
        if others:
            self.ports.bus.publish(others)
        for effect in effects:
            count(_PUBLISHED[effect.kind])
        logger.debug("published effects", extra={"count": len(effects)})
