"""Scoring a batch of new events from the events table's stream.

Events of one profile in a batch are coalesced: one read, one journey run and one conditional write
of the lead for all of them. Each event's effect lands exactly once because the journey ignores a
message it has already applied, so a retried batch changes nothing it already changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from nurture.pipeline.leads import LeadService
from nurture.pipeline.ports import StoredEvent


class CoalescingScorer:
    """Processes a batch group by group; `handle` answers per event, as powertools' BatchProcessor asks."""

    def __init__(self, service: LeadService, events: Sequence[StoredEvent], now: datetime) -> None:
        self.service = service
        self.now = now
        self.groups: dict[str, list[StoredEvent]] = {}
        for event in events:
            self.groups.setdefault(event.profile_id, []).append(event)
        self.outcomes: dict[str, Exception | None] = {}

    def handle(self, event: StoredEvent) -> None:
        """Score the event's whole group on first sight; raise its group's failure for every event in it."""
        group = event.profile_id
        if group not in self.outcomes:
            try:
                self.service.receive([e.message for e in self.groups.get(group, [event])], self.now)
                self.outcomes[group] = None
            except Exception as error:  # reported per event by the batch processor, retried by Lambda
                self.outcomes[group] = error
        failure = self.outcomes[group]
        if failure is not None:
            raise failure
