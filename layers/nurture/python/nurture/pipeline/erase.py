"""Erasure (the GDPR right to be forgotten): a lead's personal data and events removed from every table.

`DELETE /v1/leads/{lead_id}` and `nurture forget` call `Eraser`. What is erased, what stays (anonymous monthly
counts) and what cannot be: docs/privacy.md; a scorer writing at the same moment: docs/reliability.md.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from nurture.domain.journey import Lead
from nurture.domain.programme import SEQUENCES, Stage
from nurture.pipeline.ports import IdempotencyRecords, Ports, SentRecord
from nurture.runtime.observability import logger

# The sender's idempotency records are keyed `send#<hash>` (pipeline/send.py KEY_PREFIX; not imported, so the API
# does not load powertools' idempotency utility on a cold start: tests/unit/test_erase.py holds the two equal).
SEND_KEY_PREFIX = "send"
# Rounds of looking again, after a lead is erased, for a lead a concurrent scorer re-created from its events.
SWEEPS = 3


class Erasure(BaseModel):
    """What an erasure removed, in counts: never the data itself."""

    model_config = ConfigDict(frozen=True)

    leads: int = Field(description="Leads erased: the one asked for, and any re-created from its events meanwhile")
    events: int = Field(description="Events (page views, tracks, identifies) deleted from the events table")
    profiles: int = Field(description="Links from a userId or anonymousId to the lead deleted")
    lead_items: int = Field(description="Items kept under the lead deleted: its state, send records and the like")
    send_guards: int = Field(description="The sender's idempotency records of the lead's emails deleted")


def send_key(lead_id: str, sequence: Stage, content_id: str) -> str:
    """The key of the sender's idempotency record of one email: powertools' `<prefix>#<md5 of the JSON of what the
    key path selects>`, the path being `[lead_id, sequence, content_id]` (`Sender` in pipeline/send.py)."""
    selected = json.dumps([lead_id, sequence.value, content_id], sort_keys=True)
    return f"{SEND_KEY_PREFIX}#{hashlib.md5(selected.encode()).hexdigest()}"  # noqa: S324 - powertools' key, not a secret


def send_keys(lead: Lead, records: Iterable[SentRecord]) -> set[str]:
    """The keys of every idempotency record the sender may have written for the lead: one per email decided for it
    (its sends, and its send records), and for an email skipped as broken (the lead keeps only its id), one per
    sequence it may have been queued in."""
    emails = {(sent.sequence, sent.content_id) for sent in lead.sent}
    emails |= {(record.sequence, record.content_id) for record in records}
    emails |= {(sequence, content_id) for content_id in lead.skipped for sequence in SEQUENCES}
    return {send_key(lead.lead_id, sequence, content_id) for sequence, content_id in emails}


@dataclass
class _Progress:
    erased: list[str] = field(default_factory=list)
    profiles: set[str] = field(default_factory=set)
    message_ids: set[str] = field(default_factory=set)
    leads: int = 0
    events: int = 0
    links: int = 0
    lead_items: int = 0
    send_guards: int = 0
    emails: int = 0  # send records: the emails that went out

    def result(self) -> Erasure:
        return Erasure(
            leads=self.leads,
            events=self.events,
            profiles=self.links,
            lead_items=self.lead_items,
            send_guards=self.send_guards,
        )


class Eraser:
    """Erases leads: events of every linked profile, idempotency records, links, then the lead's items.

    The lead's state item goes last, so an erasure that fails half-way can be asked again and finds the lead.
    A scorer that read the lead before the erasure cannot write it back (its write is conditional on the version
    it read, and the item is gone); if it then re-creates a lead from the message it holds, the sweep that follows
    each erasure finds that lead (linked to an erased profile, holding an erased message) and erases it too."""

    def __init__(self, ports: Ports) -> None:
        if ports.idempotency is None:
            raise ValueError("erasure needs the sender's idempotency records (Ports.idempotency)")
        self.ports = ports
        self.idempotency: IdempotencyRecords = ports.idempotency

    def erase(self, lead_id: str, now: datetime) -> Erasure | None:
        """Erase the lead; None when there is nothing of it (never known, or erased already)."""
        return self._erase([lead_id], now)

    def forget(self, email: str, now: datetime) -> Erasure | None:
        """Erase every lead with this email; None when no lead has it."""
        return self._erase(self.ports.leads.lead_ids_by_email(email), now)

    def _erase(self, lead_ids: Collection[str], now: datetime) -> Erasure | None:
        progress = _Progress()
        pending = list(dict.fromkeys(lead_ids))
        for _ in range(SWEEPS):
            while pending:
                self._erase_one(pending.pop(0), progress)
            pending = self._recreated(progress)
            if not pending:
                break
        # A send record written after the lead was read (an email going out at that moment) is removed too.
        progress.lead_items += sum(self.ports.leads.erase_lead(lead_id) for lead_id in progress.erased)
        if progress.leads == 0 and progress.lead_items == 0:
            return None
        erasure = progress.result()
        # Kept for the monthly figures: how many, never who.
        counts = {"leads": erasure.leads, "events": erasure.events, "emails": progress.emails}
        self.ports.leads.count_erasure(f"{now:%Y-%m}", counts)
        logger.info("lead erased", extra=erasure.model_dump())  # counts only: no id, no email
        return erasure

    def _erase_one(self, lead_id: str, progress: _Progress) -> None:
        leads = self.ports.leads
        progress.erased.append(lead_id)
        stored = leads.get(lead_id)
        if stored is None:
            progress.lead_items += leads.erase_lead(lead_id)  # what a send in flight wrote after an erasure
            return
        records = leads.send_records(lead_id)
        progress.profiles |= stored.profiles
        # Events first: they are the truth `nurture rebuild` re-projects leads from. The state item last (see above).
        erased_events = self.ports.events.erase(stored.profiles)
        progress.events += len(erased_events)
        progress.message_ids |= set(erased_events)
        progress.emails += len(records)
        progress.send_guards += self.idempotency.delete(send_keys(stored.lead, records))
        progress.links += leads.unlink(stored.profiles, lead_id)
        progress.lead_items += leads.erase_lead(lead_id)
        progress.leads += 1

    def _recreated(self, progress: _Progress) -> list[str]:
        """Leads linked to an erased profile that hold an erased message: re-created by a scorer that was applying
        it at the moment of the erasure. A lead made by a message sent after the erasure holds none: it stays."""
        linked = set(self.ports.leads.leads_for(progress.profiles).values()) - set(progress.erased)
        recreated = []
        for lead_id in sorted(linked):
            stored = self.ports.leads.get(lead_id)
            if stored is not None and any(stored.lead.has_applied(m) for m in progress.message_ids):
                recreated.append(lead_id)
        return recreated
