"""In-memory implementations of the ports, with the same conditional-write semantics as DynamoDB.

They also count requests and can fail on demand, so tests can show what happens under races and crashes.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from aws_lambda_powertools.utilities.idempotency import BasePersistenceLayer
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyItemAlreadyExistsError,
    IdempotencyItemNotFoundError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord

from nurture.adapters.content import FolderContent
from nurture.adapters.dynamodb import due_shard
from nurture.constants import DUE_SHARDS
from nurture.domain.journey import Effect, Measured
from nurture.pipeline.content import CachedContent
from nurture.pipeline.ports import Conflict, Ports, SendRequest, SentRecord, StoredEvent, StoredLead
from tests.support import ROOT


class FakeEvents:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str], StoredEvent] = {}
        self._lock = threading.Lock()  # the API stores a batch's events concurrently

    def put(self, event: StoredEvent) -> bool:
        key = (event.profile_id, event.message_id)
        with self._lock:
            if key in self.items:
                return False
            self.items[key] = event
            return True

    def for_profiles(self, profile_ids: Iterable[str]) -> list[StoredEvent]:
        wanted = set(profile_ids)
        return [e for (profile, _), e in self.items.items() if profile in wanted]

    def erase(self, profile_ids: Iterable[str]) -> list[str]:
        wanted = set(profile_ids)
        with self._lock:
            keys = [key for key in self.items if key[0] in wanted]
            for key in keys:
                del self.items[key]
        return [message_id for _, message_id in keys]


@dataclass
class FakeLeads:
    due_shards: int = DUE_SHARDS
    items: dict[str, StoredLead] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    sent: list[SentRecord] = field(default_factory=list)
    erasures: dict[str, dict[str, int]] = field(default_factory=dict)  # anonymous counts by month
    writes: int = 0
    reads: int = 0
    fail_next_saves: int = 0  # simulate another writer winning the race
    # One conditional write at a time, as DynamoDB applies them (the concurrency tests write from threads)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def get(self, lead_id: str) -> StoredLead | None:
        self.reads += 1
        return self.items.get(lead_id)

    def find_by_email(self, email: str) -> StoredLead | None:
        wanted = email.strip().lower()
        return next((s for s in self.items.values() if s.lead.email == wanted), None)

    def leads_for(self, profile_ids: Iterable[str]) -> dict[str, str]:
        self.reads += 1
        return {p: self.links[p] for p in profile_ids if p in self.links}

    def save(
        self,
        stored: StoredLead,
        expected_version: int | None,
        new_profiles: frozenset[str] = frozenset(),
        absorbed: StoredLead | None = None,
    ) -> None:
        with self._lock:
            self._save(stored, expected_version, new_profiles, absorbed)

    def _save(
        self,
        stored: StoredLead,
        expected_version: int | None,
        new_profiles: frozenset[str],
        absorbed: StoredLead | None,
    ) -> None:
        lead_id = stored.lead.lead_id
        current = self.items.get(lead_id)
        if self.fail_next_saves:
            self.fail_next_saves -= 1
            raise Conflict(lead_id)
        if (expected_version is None) != (current is None) or (current and current.version != expected_version):
            raise Conflict(lead_id)
        owned_elsewhere = [
            p
            for p in new_profiles
            if self.links.get(p, lead_id) != lead_id and not (absorbed and p in absorbed.profiles)
        ]
        if owned_elsewhere:
            raise Conflict(lead_id)
        if absorbed is not None:
            current_absorbed = self.items.get(absorbed.lead.lead_id)
            if current_absorbed is None or current_absorbed.version != absorbed.version:
                raise Conflict(absorbed.lead.lead_id)  # changed, or already merged into another lead
            self.items.pop(absorbed.lead.lead_id, None)
        self.writes += 1
        self.items[lead_id] = stored
        for profile in new_profiles:
            self.links[profile] = lead_id

    def clear_outbox(self, lead_id: str, effect_ids: Collection[str], version: int, due_at: datetime | None) -> None:
        with self._lock:
            current = self.items.get(lead_id)
            if current is None or not effect_ids:
                return
            self.writes += 1
            outbox = tuple(p for p in current.outbox if p.id not in effect_ids)
            due = due_at if current.version == version else current.due_at
            self.items[lead_id] = replace(current, outbox=outbox, version=current.version + 1, due_at=due)

    def due(self, shard: int, now: datetime) -> Iterator[str]:
        for lead_id, stored in list(self.items.items()):
            if stored.due_at is not None and stored.due_at <= now and due_shard(lead_id, self.due_shards) == str(shard):
                self.reads += 1
                yield lead_id

    def record_send(self, record: SentRecord) -> None:
        self.sent.append(record)

    def send_records(self, lead_id: str) -> list[SentRecord]:
        # As DynamoDB: a record overwrites an earlier one of the same sequence and email; read in sort key order.
        latest = {(r.sequence.value, r.content_id): r for r in self.sent if r.lead_id == lead_id}
        return [latest[key] for key in sorted(latest, key=lambda key: f"{key[0]}#{key[1]}")]

    def lead_ids_by_email(self, email: str) -> list[str]:
        wanted = email.strip().lower()
        return [lead_id for lead_id, s in self.items.items() if s.lead.email == wanted]

    def erase_lead(self, lead_id: str) -> int:
        with self._lock:
            state = self.items.pop(lead_id, None)
            records = {(r.sequence, r.content_id) for r in self.sent if r.lead_id == lead_id}
            self.sent = [r for r in self.sent if r.lead_id != lead_id]
        return len(records) + (state is not None)

    def unlink(self, profile_ids: Iterable[str], lead_id: str) -> int:
        with self._lock:
            mine = [p for p in set(profile_ids) if self.links.get(p) == lead_id]
            for profile in mine:
                del self.links[profile]
        return len(mine)

    def count_erasure(self, month: str, counts: Mapping[str, int]) -> None:
        totals = self.erasures.setdefault(month, {})
        for name, value in counts.items():
            totals[name] = totals.get(name, 0) + value


@dataclass
class FakeBus:
    published: list[Effect] = field(default_factory=list)
    fail: bool = False

    def publish(self, effects: Sequence[Effect]) -> None:
        if self.fail:
            raise RuntimeError("EventBridge is unavailable")
        self.published += effects


@dataclass
class FakeQueue:
    queued: list[SendRequest] = field(default_factory=list)
    calls: int = 0
    sizes: list[int] = field(default_factory=list)  # requests per call
    # The dispatcher publishes from its worker threads
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def enqueue(self, requests: Sequence[SendRequest]) -> None:
        with self._lock:
            self.calls += 1
            self.sizes.append(len(requests))
            self.queued += requests


@dataclass
class FakeMailer:
    sent: list[dict[str, object]] = field(default_factory=list)

    def send(
        self, to: str, subject: str, text: str, html: str, tags: dict[str, str], headers: Mapping[str, str]
    ) -> str:
        self.sent.append({"to": to, "subject": subject, "text": text, "html": html, "tags": tags, "headers": headers})
        return "msg-" + hashlib.sha256(f"{to}{subject}{len(self.sent)}".encode()).hexdigest()[:12]


class FakeIdempotency(BasePersistenceLayer):
    """powertools idempotency records in memory, written as DynamoDB does (a live record is never overwritten),
    and deleted by key as erasure does (`IdempotencyRecords`)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: dict[str, DataRecord] = {}

    def _get_record(self, idempotency_key: str) -> DataRecord:
        if idempotency_key not in self.records:
            raise IdempotencyItemNotFoundError
        return self.records[idempotency_key]

    def _put_record(self, data_record: DataRecord) -> None:
        old = self.records.get(data_record.idempotency_key)
        if old is not None and not old.is_expired:
            raise IdempotencyItemAlreadyExistsError(old_data_record=old)
        self.records[data_record.idempotency_key] = data_record

    def _update_record(self, data_record: DataRecord) -> None:
        self.records[data_record.idempotency_key] = data_record

    def _delete_record(self, data_record: DataRecord) -> None:
        self.records.pop(data_record.idempotency_key, None)

    def delete(self, keys: Collection[str]) -> int:
        return sum(self.records.pop(key, None) is not None for key in set(keys))


@dataclass
class FakeMetrics:
    """The monthly counts: every Measured effect added, in order, and the totals per month."""

    added: list[Measured] = field(default_factory=list)

    def add(self, measured: Sequence[Measured]) -> None:
        self.added += measured

    def month(self, month: str) -> dict[str, float]:
        totals: dict[str, float] = {}
        for effect in self.added:
            for in_month, name, amount in effect.counts:
                if in_month == month:
                    totals[name] = totals.get(name, 0) + amount
        return totals


def fake_ports(content_root: Path = ROOT / "content") -> Ports:
    return Ports(
        events=FakeEvents(),
        leads=FakeLeads(),
        bus=FakeBus(),
        queue=FakeQueue(),
        mailer=FakeMailer(),
        content=FolderContent(content_root),
        idempotency=FakeIdempotency(),
        metrics=FakeMetrics(),
    )


def fake_content(ports: Ports) -> CachedContent:
    return CachedContent(ports.content, recheck_seconds=0)


@dataclass
class FakeNotifier:
    """The operations topic: what it was told, in order."""

    published: list[tuple[str, str]] = field(default_factory=list)

    def publish(self, subject: str, message: str) -> None:
        self.published.append((subject, message))
