"""The small interfaces the services depend on, and the records that cross them.

DynamoDB, S3, SES, EventBridge and SQS implement these in `nurture.adapters`;
the unit tests use in-memory fakes; the local stack uses the real adapters against moto.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from pydantic import BaseModel, ConfigDict, TypeAdapter

from nurture.constants import DUE_SHARDS, OUTBOX_LEASE_SECONDS
from nurture.domain.journey import Effect, Lead, Measured, Send
from nurture.domain.messages import Message
from nurture.domain.programme import Stage
from nurture.domain.tokens import Signer

effects_adapter: TypeAdapter[list[Effect]] = TypeAdapter(list[Effect])
effect_adapter: TypeAdapter[Effect] = TypeAdapter(Effect)
OUTBOX_LEASE = timedelta(seconds=OUTBOX_LEASE_SECONDS)


def effect_id(effect: Effect) -> str:
    """An effect's stable id: its kind and a hash of its content (the lead, what happened, and when).

    The same occurrence has the same id wherever it is saved, carried or published, so an outbox keyed by it
    holds each effect once, and bus consumers can deduplicate on it."""
    digest = hashlib.blake2b(effect_adapter.dump_json(effect), digest_size=12).hexdigest()
    return f"{effect.kind}-{digest}"


class NotSent(Exception):
    """The mailer is sure the email did not go out (the provider refused it, or was never reached): safe to retry.

    Any other error from `Mailer.send` means the outcome is unknown, and the email must not be sent again."""


class Conflict(Exception):
    """Someone else changed the lead (or the link) since it was read: read again and retry."""


class StoredEvent(BaseModel):
    """One accepted message as kept in the events table: the source of truth for every score."""

    model_config = ConfigDict(frozen=True)

    profile_id: str
    message: Message
    received_at: datetime

    @property
    def message_id(self) -> str:
        return self.message.message_id


@dataclass(frozen=True)
class Pending:
    """An effect in a lead's outbox: decided and saved with the lead at `saved_at`, not yet published.

    The writer that saved it owns it (publishes it, then removes it) until `saved_at + OUTBOX_LEASE`."""

    effect: Effect
    saved_at: datetime

    @property
    def id(self) -> str:
        return effect_id(self.effect)

    @property
    def expires_at(self) -> datetime:
        return self.saved_at + OUTBOX_LEASE


@dataclass(frozen=True)
class StoredLead:
    lead: Lead
    version: int
    profiles: frozenset[str]
    outbox: tuple[Pending, ...] = ()  # effects saved and not yet published, each once (by effect id)
    due_at: datetime | None = None  # when the dispatcher must next look at the lead (the due index)

    @property
    def effects(self) -> tuple[Effect, ...]:
        """The unpublished effects, in the order they were saved."""
        return tuple(p.effect for p in self.outbox)


@dataclass(frozen=True)
class SentRecord:
    lead_id: str
    sequence: Stage
    content_id: str
    subject: str
    sent_at: datetime
    provider_id: str
    variant: int = 0  # which subject of an A/B test the lead got (the first, when there was no test)


class SendRequest(BaseModel):
    """What the dispatcher asks the sender to do: one email, one lead, one step of one sequence."""

    model_config = ConfigDict(frozen=True)

    lead_id: str
    sequence: Stage
    content_id: str
    step: int
    due_at: datetime

    @property
    def key(self) -> str:
        """At most one send per lead, sequence and email: the idempotency key."""
        return f"{self.lead_id}/{self.sequence.value}/{self.content_id}"

    @classmethod
    def of(cls, send: Send) -> SendRequest:
        return cls(
            lead_id=send.lead_id, sequence=send.sequence, content_id=send.content_id, step=send.step, due_at=send.at
        )


class EventStore(Protocol):
    def put(self, event: StoredEvent) -> bool:
        """Store an event unless its messageId is already there. True when it was new."""

    def for_profiles(self, profile_ids: Iterable[str]) -> list[StoredEvent]: ...

    def erase(self, profile_ids: Iterable[str]) -> list[str]:
        """Delete every event of these profiles (erasure); the messageIds of the events deleted."""


class LeadStore(Protocol):
    def get(self, lead_id: str) -> StoredLead | None: ...

    def find_by_email(self, email: str) -> StoredLead | None: ...

    def leads_for(self, profile_ids: Iterable[str]) -> dict[str, str]:
        """Which lead each known profile (`u#…`/`a#…`) belongs to."""

    def save(
        self,
        stored: StoredLead,
        expected_version: int | None,
        new_profiles: frozenset[str] = frozenset(),
        absorbed: StoredLead | None = None,
    ) -> None:
        """Write the lead if nobody changed it since `expected_version` (None: it must not exist yet) and
        link `new_profiles` to it; else raise Conflict. `absorbed`: an anonymous lead folded into this
        one, deleted in the same transaction."""

    def clear_outbox(self, lead_id: str, effect_ids: Collection[str], version: int, due_at: datetime | None) -> None:
        """Remove exactly these entries from the lead's outbox (their effects went out), whatever its version
        now, and move the lead to a new version, so a writer holding an older read, which still lists them,
        cannot save them back. If the lead is still at `version` (the remover's own write), also set its due
        index to `due_at` (no longer due for the entries removed). Idempotent; nothing happens when the lead
        is gone."""

    def due(self, shard: int, now: datetime) -> Iterator[str]:
        """Ids of the leads in `shard` whose next action is at or before `now`, read from the due index."""

    def record_send(self, record: SentRecord) -> None: ...

    def send_records(self, lead_id: str) -> list[SentRecord]:
        """The send records of one lead (one per sequence and email, the last written), by sequence and email id."""

    def lead_ids_by_email(self, email: str) -> list[str]:
        """Every lead with this email (usually one; two userIds may have given the same address)."""

    def erase_lead(self, lead_id: str) -> int:
        """Delete every item of the lead's partition (its state, send records and whatever else is kept under it),
        whatever their version; how many there were. Nothing happens when there are none."""

    def unlink(self, profile_ids: Iterable[str], lead_id: str) -> int:
        """Delete the links of these profiles that point at `lead_id` (a link now pointing at another lead stays);
        how many were deleted."""

    def count_erasure(self, month: str, counts: Mapping[str, int]) -> None:
        """Add `counts` to the anonymous erasure counts of `month` (YYYY-MM): numbers only, no identifier."""


class IdempotencyRecords(Protocol):
    """The sender's powertools idempotency records, by key (`nurture.pipeline.erase.send_keys` derives a lead's)."""

    def delete(self, keys: Collection[str]) -> int:
        """Delete the records with these keys (absent ones are skipped); how many there were."""


class MetricsStore(Protocol):
    """The programme's monthly counts (`nurture.domain.metrics`): added to as effects happen, read by the report."""

    def add(self, measured: Sequence[Measured]) -> None:
        """Add every (month, counter, amount) of these effects; the same counter given twice adds both."""

    def month(self, month: str) -> dict[str, float]:
        """Every counter of the month (`YYYY-MM`) and its total; empty when nothing was counted."""


class OwnerStore(Protocol):
    def owner_of(self, lead_id: str) -> str | None:
        """The name of the lead's owner, if one was assigned."""

    def assign(self, lead_id: str, owner: str, at: datetime) -> str:
        """Make `owner` the lead's owner unless it has one: returns the owner it has afterwards."""

    def next_turn(self) -> int:
        """A number one higher each call, shared by every function: whose turn it is."""


class EventBus(Protocol):
    def publish(self, effects: Sequence[Effect]) -> None: ...


class SendQueue(Protocol):
    def enqueue(self, requests: Sequence[SendRequest]) -> None: ...


class Mailer(Protocol):
    def send(
        self, to: str, subject: str, text: str, html: str, tags: dict[str, str], headers: Mapping[str, str]
    ) -> str:
        """Send one email with these extra headers (List-Unsubscribe, ...); returns the provider's message id.
        Raises NotSent when it surely did not go out."""


class Notifier(Protocol):
    """The operations topic: what marketers and operators must fix (never a lead's data)."""

    def publish(self, subject: str, message: str) -> None: ...


class ContentSource(Protocol):
    def read(self, key: str, etag: str | None = None) -> tuple[str, str] | None:
        """The object's text and ETag, or None when `etag` still matches (unchanged)."""


@dataclass
class Ports:
    """Everything a service may touch, injected so tests and the local stack can swap any of it."""

    events: EventStore
    leads: LeadStore
    bus: EventBus
    queue: SendQueue
    mailer: Mailer
    content: ContentSource
    due_shards: int = DUE_SHARDS
    # Signs the unsubscribe and click-through links of emails; deployed: the key in Secrets Manager (wiring).
    # The default, a random key of this process, makes links no other process can verify: fine for tests.
    signer: Signer = field(default_factory=lambda: Signer(secrets.token_bytes(32)))
    # Where marketers hear of an email that did not render for a lead (None: not told, only counted and logged).
    operations: Notifier | None = None
    # Where the API answers (the unsubscribe route); deployed: the HTTP API's URL, locally `nurture local`'s.
    public_url: str = "http://127.0.0.1:8080"
    # The sender's idempotency records, which erasure deletes for a lead (None where nothing erases: tools).
    idempotency: IdempotencyRecords | None = None
    # Who owns each qualified lead (the alerts function assigns; the lead view shows). None: not known here.
    owners: OwnerStore | None = None
    # The monthly counts the report reads (None: nothing counted, e.g. `nurture replay`).
    metrics: MetricsStore | None = None
