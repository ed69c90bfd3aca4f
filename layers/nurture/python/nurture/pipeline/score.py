"""Scoring a batch of new events from the events table's stream.

Events of one profile (or of profiles an identify in the batch links) are coalesced: one read, one
journey run and one conditional write of the lead for all of them, in time order. Each event's effect
lands exactly once because the journey ignores a message it has already applied, so a retried batch
changes nothing it already changed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol, cast

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.parser.models import DynamoDBStreamRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from nurture.pipeline.leads import LeadService
from nurture.pipeline.ports import StoredEvent


class CoalescingScorer:
    """Processes a batch group by group; `handle` answers per event, as powertools' BatchProcessor asks.

    A group is every event of the batch whose profiles are linked within it: an identify that names a userId
    and an anonymousId joins both profiles' events, so the lead service applies them together, in time order,
    whatever order the stream delivered them in."""

    def __init__(self, service: LeadService, events: Sequence[StoredEvent], now: datetime) -> None:
        self.service = service
        self.now = now
        parent: dict[str, str] = {}

        def root(profile: str) -> str:
            while parent.setdefault(profile, profile) != profile:
                parent[profile] = parent[parent[profile]]
                profile = parent[profile]
            return profile

        for event in events:
            first, *others = event.message.profile_ids or (event.profile_id,)
            for other in (event.profile_id, *others):
                parent[root(other)] = root(first)
        self.group_of = {event.profile_id: root(event.profile_id) for event in events}
        self.groups: dict[str, list[StoredEvent]] = {}
        for event in events:
            self.groups.setdefault(self.group_of[event.profile_id], []).append(event)
        self.outcomes: dict[str, Exception | None] = {}

    def handle(self, event: StoredEvent) -> None:
        """Score the event's whole group on first sight; raise its group's failure for every event in it."""
        group = self.group_of.get(event.profile_id, event.profile_id)
        if group not in self.outcomes:
            try:
                self.service.receive([e.message for e in self.groups.get(group, [event])], self.now)
                self.outcomes[group] = None
            except Exception as error:  # reported per event by the batch processor, retried by Lambda
                self.outcomes[group] = error
        failure = self.outcomes[group]
        if failure is not None:
            raise failure


class EventRecord(Protocol):
    """A stream record of the events table, parsed (the scorer's handler defines the model)."""

    @property
    def new_event(self) -> StoredEvent | None:
        """The event the record inserted; None for any other change (a TTL expiry removing one): not scored."""


class ScoringProcessor(BatchProcessor):
    """powertools' BatchProcessor for the events table's stream, scoring each profile's new events together.

    powertools parses a record with `model` and handles it before it parses the next, but coalescing
    needs every readable event of the batch before the first is handled. So `process` parses each
    record once, up front (with powertools' own `_to_batch_type`), and `_to_batch_type` then hands
    powertools that result, or raises its validation error again: a record that does not parse fails
    alone, reported by powertools in `batchItemFailures`, and the rest of the batch is scored.
    """

    def __init__(
        self, model: type[DynamoDBStreamRecordModel], scorer: Callable[[list[StoredEvent]], CoalescingScorer]
    ) -> None:
        super().__init__(event_type=EventType.DynamoDBStreams, model=model)
        self._new_scorer = scorer  # built per batch, from the batch's readable new events
        self._parsed: dict[int, EventRecord | ValidationError] = {}
        self._scorer: CoalescingScorer | None = None

    def score(self, event: dict[str, Any], context: LambdaContext | None = None) -> PartialItemFailureResponse:
        """Score a stream event's records; the records that failed, for Lambda to retry."""
        return process_partial_response(event=event, record_handler=self._handle, processor=self, context=context)

    def process(self) -> list[tuple[Any, ...]]:
        self._parsed = {id(record): self._parse(record) for record in self.records}
        readable = [p.new_event for p in self._parsed.values() if not isinstance(p, ValidationError)]
        self._scorer = self._new_scorer([event for event in readable if event is not None])
        try:
            # The batch's counts for the monthly review are added together, once it is scored (at most once).
            with self._scorer.service.counting_together():
                return super().process()
        finally:
            self._parsed, self._scorer = {}, None

    def _parse(self, record: dict[str, Any]) -> EventRecord | ValidationError:
        try:
            return cast(EventRecord, super()._to_batch_type(record, self.event_type, self.model))
        except ValidationError as error:
            return error

    def _to_batch_type(self, record: dict[str, Any], event_type: EventType, model: Any = None) -> Any:
        if model is None:  # powertools reporting a record that did not parse: its plain data class
            return super()._to_batch_type(record, event_type)
        parsed = self._parsed[id(record)]
        if isinstance(parsed, ValidationError):
            raise parsed
        return parsed

    def _handle(self, record: EventRecord) -> None:
        assert self._scorer is not None
        if record.new_event is not None:
            self._scorer.handle(record.new_event)
