"""Email feedback: each SES record becomes a message on the lead's profile in the events table, scored by the stream
like any other; opens and clicks that look like a link scanner's are stored flagged, and score nothing.

The scanner rule needs what is known of the email (its delivery, its other clicks): the `MailLog` port keeps that
per email under the lead's own key, so erasing the lead erases it too, and forgets it after `MAIL_LOG_DAYS`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from nurture.domain.email_feedback import (
    TAG_LEAD,
    MailSoFar,
    NotAnSesEvent,
    SeenClick,
    SesEvent,
    automated_because,
    link_without_token,
    parse_notification,
    to_message,
)
from nurture.domain.programme import Programme
from nurture.pipeline.ingest import EARLIEST, MAX_AHEAD
from nurture.pipeline.ports import Ports, StoredEvent, StoredLead
from nurture.runtime.observability import Metric, count, logger

# Opens and clicks come within days of the send; a scanner's within seconds. A month covers both with room.
MAIL_LOG_DAYS = 30


class MailEntry(BaseModel):
    """One thing known of an email: its delivery, or one click (its record's key, so a duplicate is one entry)."""

    model_config = ConfigDict(frozen=True)

    key: str
    kind: Literal["delivery", "click"]
    at: datetime
    link: str = ""


class MailLog(Protocol):
    def entries(self, lead_id: str, mail_id: str) -> list[MailEntry]:
        """What is known of the lead's email `mail_id` (SES's message id)."""

    def note(self, lead_id: str, mail_id: str, entry: MailEntry, expires_at: datetime) -> None:
        """Keep `entry` (idempotent: the same key is one entry) until `expires_at`."""


class Recorded(BaseModel):
    """What became of one SES record."""

    outcome: Literal["stored", "duplicate", "unknown_lead", "refused"]
    event: str | None = None
    lead_id: str | None = None
    automated_because: str | None = None
    problem: str | None = None  # why a refused record was refused, naming its field


def time_problem(event: SesEvent, received_at: datetime) -> str | None:
    """What is wrong with the record's times, naming the field, or None. The ingest API's bounds for a message: not
    before 2000-01-01, not more than a day after it was received (a click dated ahead would score, undecayed, until
    then; one dated past the calendar's end would break the lead's every later score)."""
    for field, at in event.times:
        if at > received_at + MAX_AHEAD:
            return f"{field}: must not be more than a day after the record was received"
        if at < EARLIEST:
            return f"{field}: must not be before 2000-01-01"
    return None


def peers_of(bodies: Iterable[Any]) -> list[SesEvent]:
    """The SES records among `bodies` (a batch's), ignoring what does not parse: it fails on its own, in the batch
    processor. A scanner's clicks on every link usually arrive together; judging each with the others in view flags
    the first of them too."""
    events = []
    for body in bodies:
        try:
            events.append(parse_notification(body))
        except NotAnSesEvent:
            continue
    return events


class EmailFeedback:
    def __init__(self, ports: Ports, mail_log: MailLog, programme: Programme) -> None:
        self.ports = ports
        self.mail_log = mail_log
        self.programme = programme

    def record(self, event: SesEvent, now: datetime, peers: Sequence[SesEvent] = ()) -> Recorded:
        """Store the lead's message for `event` (once, whatever the number of deliveries of the record). A record
        whose times are out of bounds is refused: logged, stored nowhere and not failed, as no retry can mend it."""
        problem = time_problem(event, now)
        if problem is not None:
            logger.warning(
                "SES record refused", extra={"ses_event": event.event_type, "mail": event.mail_id, "problem": problem}
            )
            return Recorded(outcome="refused", problem=problem)
        peers = [peer for peer in peers if time_problem(peer, now) is None]
        stored = self._lead_of(event)
        if stored is None:
            count(Metric.EMAIL_EVENTS_UNMATCHED)
            logger.info("SES record for no known lead", extra={"ses_event": event.event_type, "mail": event.mail_id})
            return Recorded(outcome="unknown_lead")
        lead_id = stored.lead.lead_id
        expires_at = now + timedelta(days=MAIL_LOG_DAYS)
        entry = _entry(event)
        if entry is not None:
            self.mail_log.note(lead_id, event.mail_id, entry, expires_at)
        because = None
        if event.interaction is not None:
            so_far = _so_far(event, self.mail_log.entries(lead_id, event.mail_id), peers)
            because = automated_because(event, so_far, self.programme.email_feedback.scanner)
        profile = min(stored.profiles, key=lambda p: (not p.startswith("u#"), p))
        message = to_message(event, profile, because)
        new = self.ports.events.put(StoredEvent(profile_id=profile, message=message, received_at=now))
        if new:
            count(Metric.EMAIL_EVENTS_RECORDED)
            if because is not None:
                count(Metric.AUTOMATED_EMAIL_EVENTS)
            if message.properties.get("bounce_type") == "transient":
                count(Metric.TRANSIENT_BOUNCES)
        logger.info(
            "SES record stored" if new else "SES record already stored",
            extra={"lead_id": lead_id, "ses_event": event.event_type, "automated_because": because},
        )
        return Recorded(
            outcome="stored" if new else "duplicate", event=message.event, lead_id=lead_id, automated_because=because
        )

    def _lead_of(self, event: SesEvent) -> StoredLead | None:
        """The lead the email went to: by the `lead_id` tag the sender puts on every email; an email sent before the
        tag existed, by its recipient. A tagged email of a lead that no longer exists (erased) belongs to nobody."""
        lead_id = event.mail.tag(TAG_LEAD)
        if lead_id is not None:
            stored = self.ports.leads.get(lead_id)
        elif event.mail.destination:
            stored = self.ports.leads.find_by_email(event.mail.destination[0].strip().lower())
        else:
            stored = None
        return stored if stored is not None and stored.profiles else None


def _entry(event: SesEvent) -> MailEntry | None:
    if event.delivery is not None:
        return MailEntry(key=event.key, kind="delivery", at=event.at)
    if event.click is not None:
        return MailEntry(key=event.key, kind="click", at=event.at, link=link_without_token(event.click.link))
    return None


def _so_far(event: SesEvent, entries: Sequence[MailEntry], peers: Sequence[SesEvent]) -> MailSoFar:
    """The email as known now: the log's entries and this batch's records of the same email."""
    known = {entry.key: entry for entry in entries}
    for peer in peers:
        if peer.mail_id == event.mail_id and (entry := _entry(peer)) is not None:
            known.setdefault(entry.key, entry)
    deliveries = [entry.at for entry in known.values() if entry.kind == "delivery"]
    clicks = tuple(
        SeenClick(key=entry.key, link=entry.link, at=entry.at) for entry in known.values() if entry.kind == "click"
    )
    return MailSoFar(sent_at=event.mail.timestamp, delivered_at=min(deliveries, default=None), clicks=clicks)
