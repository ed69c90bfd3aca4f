"""An in-memory runtime for the journey: messages in time order, clock ticks in between.

It is what `nurture replay` runs and the reference the AWS pipeline is tested against: identities
are resolved by the same rule (`nurture.domain.identity`) and leads are ticked only when they are
due, on the dispatcher's five-minute grid.
"""

from __future__ import annotations

import gc
import heapq
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from nurture.constants import DISPATCH_SCHEDULE_MINUTES
from nurture.domain.identity import resolve
from nurture.domain.journey import Effect, JourneyInput, Lead, SalesUpdate, Tick, merge, new_lead, step
from nurture.domain.messages import Message
from nurture.domain.programme import Programme

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def on_dispatch_grid(at: datetime, minutes: int = DISPATCH_SCHEDULE_MINUTES) -> datetime:
    """The first scheduled dispatcher tick at or after `at`."""
    grid = timedelta(minutes=minutes)
    ticks, remainder = divmod(at - _EPOCH, grid)
    return _EPOCH + (ticks + (1 if remainder else 0)) * grid


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused while the engine runs, restored after.

    A replay allocates millions of short-lived models, so the collector would run thousands of times, each
    time walking every lead held; it found nothing, because the engine makes no reference cycles (tested:
    tests/unit/test_replay.py), and reference counting frees everything else as before. About a fifth of a
    replay's time (docs/benchmarks.md)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def lead_id_for(message: Message) -> str:
    """A new lead's id, readable in replay output: its userId, else its anonymousId."""
    return message.user_id if message.user_id is not None else f"anon:{message.anonymous_id}"


class Engine:
    def __init__(self, programme: Programme) -> None:
        self.programme = programme
        self.leads: dict[str, Lead] = {}
        self.profiles: dict[str, str] = {}
        self.effects: list[Effect] = []
        self.messages_applied = 0
        self.ticks_applied = 0
        self._due: list[tuple[datetime, str]] = []
        # Each lead's next action as its last step computed it: a lead changes only through a step (a merged-away
        # lead is removed), so a planned tick checks it without computing it again.
        self._next_action: dict[str, datetime | None] = {}

    def run(self, messages: Iterable[Message], until: datetime | None = None) -> list[Effect]:
        """Apply messages in time order (ties keep their given order), then tick up to `until`."""
        ordered = sorted(messages, key=lambda message: message.timestamp)
        with collector_paused():
            for message in ordered:
                self.receive(message)
            if until is not None:
                self.advance(until)
        return self.effects

    def receive(self, message: Message) -> list[Effect]:
        self.advance(message.timestamp)
        lead = self._resolve(message)
        self.messages_applied += 1
        return self._apply(lead, message, message.timestamp)

    def update_sales(self, lead_id: str, update: SalesUpdate, now: datetime) -> list[Effect]:
        self.advance(now)
        return self._apply(self.leads[lead_id], update, now)

    def name_of(self, lead_id: str) -> str:
        """How a person reading the timeline knows the lead: its userId, else its email."""
        user_ids = [p[2:] for p, i in self.profiles.items() if i == lead_id and p.startswith("u#")]
        return user_ids[0] if user_ids else (self.leads[lead_id].email or lead_id)

    def advance(self, until: datetime) -> list[Effect]:
        """Run every dispatcher tick due up to `until`, in time order."""
        effects: list[Effect] = []
        while self._due and self._due[0][0] <= until:
            at, lead_id = heapq.heappop(self._due)
            lead = self.leads.get(lead_id)
            if lead is None:
                continue  # folded into another lead since this tick was planned
            due = self._next_action.get(lead_id)
            if due is None or due > at:
                continue  # superseded: the lead changed since this tick was planned
            self.ticks_applied += 1
            effects += self._apply(lead, Tick(), at)
        return effects

    def _apply(self, lead: Lead, given: JourneyInput, now: datetime) -> list[Effect]:
        outcome = step(lead, given, self.programme, now)
        self.leads[lead.lead_id] = outcome.lead
        self._next_action[lead.lead_id] = outcome.next_action_at
        if outcome.next_action_at is not None:
            # A tick never plans another tick at its own time, so a stuck lead cannot loop forever.
            earliest = now + timedelta(minutes=DISPATCH_SCHEDULE_MINUTES) if isinstance(given, Tick) else now
            heapq.heappush(self._due, (on_dispatch_grid(max(outcome.next_action_at, earliest)), lead.lead_id))
        self.effects += outcome.effects
        return list(outcome.effects)

    def _resolve(self, message: Message) -> Lead:
        """The lead a message belongs to; an identify folds an anonymous visitor's history into the lead."""
        links = {p: self.profiles[p] for p in message.profile_ids if p in self.profiles}
        found = resolve(message.profile_ids, links, lambda: lead_id_for(message))
        lead = new_lead(found.lead_id) if found.is_new else self.leads[found.lead_id]
        if found.absorbed is not None:
            lead = merge(lead, self.leads.pop(found.absorbed), self.programme)
            self._next_action.pop(found.absorbed, None)
            # Every profile of the absorbed lead moves with it (more than one only if a device was shared).
            self.profiles = {p: lead.lead_id if i == found.absorbed else i for p, i in self.profiles.items()}
        self.leads[lead.lead_id] = lead
        for profile in found.link:
            self.profiles[profile] = lead.lead_id
        return lead
