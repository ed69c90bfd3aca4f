"""What the programme is measured on, counted as it happens (docs/metrics.md): pure.

Each step of a lead's journey is measured by comparing the lead before and after it: the stage changes with the
days spent in the stage left, sales alerts (MQLs), email feedback (unique opens and clicks per lead and email,
scanner activity apart), unsubscribes, sales statuses with amounts, sequences completed and leads waiting on
content. The counts are per calendar month (UTC), so a month's report reads a few hundred counters, not every event.
The sender counts the emails SES accepted (it alone knows the subject variant): `sent_counts`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from nurture.domain.messages import TrackMessage
from nurture.domain.programme import Programme, Stage

if TYPE_CHECKING:  # the journey measures its own steps: it imports this module, not the other way round
    from nurture.domain.journey import Effect, JourneyInput, Lead, SalesUpdate, Transition

Count = tuple[str, str, float]  # (month "YYYY-MM", counter, amount)
SEP = "|"
NURTURED, NOT_NURTURED = "nurtured", "not_nurtured"
# An email event a lead's email_seen remembers, so an open or a click counts once per lead and email.
SEEN_KEPT = 400
# The system events (nurture.domain.system_events) that are feedback on one email, by what they count as.
_FEEDBACK = {
    "Email Delivered": "delivered",
    "Email Opened": "opened",
    "Email Link Clicked": "clicked",
    "Email Bounced": "bounced",
    "Email Complained": "complained",
}
UNSUBSCRIBED = "Unsubscribed"
_QUALIFIED = frozenset({"accepted", "opportunity", "won"})
_UNIQUE = {"opened", "clicked"}


class _Add(Protocol):
    def __call__(self, name: str, amount: float = 1, in_month: str = ...) -> None: ...


def month_of(at: datetime) -> str:
    return f"{at.year:04d}-{at.month:02d}"


def counter(*parts: object) -> str:
    """A counter's name: its group first (`stage`, `days`, `email`, ...), then what it counts."""
    return SEP.join(str(part) for part in parts)


def group_of(name: str) -> str:
    return name.split(SEP, 1)[0]


def sent_counts(sequence: Stage, content_id: str, variant: int, at: datetime) -> list[Count]:
    """An email SES accepted: counted by the sender, per email and subject variant."""
    return [(month_of(at), counter("email", sequence.value, content_id, variant, "sent"), 1)]


def measure(
    before: Lead,
    after: Lead,
    given: JourneyInput,
    effects: Iterable[Effect],
    programme: Programme,
    now: datetime,
) -> tuple[list[Count], tuple[str, ...]]:
    """The counts one journey step adds, and the lead's `email_seen` after it (an open or click counted once)."""
    month = month_of(now)
    counts: list[Count] = []
    seen = after.email_seen

    def add(name: str, amount: float = 1, in_month: str = month) -> None:
        counts.append((in_month, name, amount))

    entered_at = before.stage_entered_at
    for effect in effects:
        if effect.kind == "transition":
            _transition(effect, entered_at, add)
            entered_at = effect.at
            if effect.to_stage.is_sequence or effect.to_stage is Stage.SALES_ENGAGED:
                add(counter("score", effect.to_stage.value, "sum"), round(after.intent(programme, now), 1))
                add(counter("score", effect.to_stage.value, "count"))
        elif effect.kind == "alert":
            add(counter("mql", "alerts"))
    _waiting(before, after, add)
    if isinstance(given, TrackMessage) and not before.has_applied(given.message_id):
        seen = _feedback(given, before, seen, add)
    from nurture.domain.journey import SalesUpdate  # at call time: the journey module is loaded by then

    if isinstance(given, SalesUpdate):
        _sales(given, before, after, add)
    return counts, seen


def _transition(effect: Transition, entered_at: datetime | None, add: _Add) -> None:
    to = effect.to_stage.value
    if effect.from_stage is None:
        add(counter("leads", "new"))
    add(counter("stage", "entered", to))
    if effect.from_stage is not None:
        add(counter("stage", "moved", effect.from_stage.value, to))
        if entered_at is not None:
            days = max(0, (effect.at - entered_at).days)
            add(counter("days", effect.from_stage.value, to, days))
    if effect.to_stage is Stage.RE_ENGAGEMENT:
        add(counter("reengagement", "entered"))
    if effect.from_stage is Stage.RE_ENGAGEMENT and effect.to_stage is Stage.SUPPRESSED:
        add(counter("reengagement", "suppressed"))


def _waiting(before: Lead, after: Lead, add: _Add) -> None:
    """Leads waiting on new content: +1 when a lead has had every email of its sequence, -1 when it stops waiting."""
    was = before.exhausted and before.stage is not None and before.stage.is_sequence
    now_waits = after.exhausted and after.stage is not None and after.stage.is_sequence
    if was and (not now_waits or after.stage is not before.stage):
        assert before.stage is not None
        add(counter("waiting", before.stage.value), -1)
    if now_waits and (not was or after.stage is not before.stage):
        assert after.stage is not None
        add(counter("waiting", after.stage.value))
        add(counter("sequence", after.stage.value, "completed"))


def _feedback(message: TrackMessage, before: Lead, seen: tuple[str, ...], add: _Add) -> tuple[str, ...]:
    """Email feedback per email and subject variant: unique opens and clicks per lead, scanners' apart."""
    if message.event == UNSUBSCRIBED:
        add(counter("unsubscribed", "total"))
        if before.sent:
            last = before.sent[-1]
            add(counter("unsubscribed", last.sequence.value, last.content_id))
        return seen
    what = _FEEDBACK.get(message.event)
    properties = message.properties
    content_id, sequence = properties.get("content_id"), properties.get("sequence")
    if what is None or not isinstance(content_id, str) or not isinstance(sequence, str):
        return seen
    variant = properties.get("variant", 0)
    key = ("email", sequence, content_id, variant)
    if properties.get("automated") is True:
        add(counter(*key, f"{what}_automated"))
        return seen
    if what == "bounced" and str(properties.get("bounce_type", "")).lower() == "rejected":
        what = "rejected"
    elif what == "bounced":
        what = "bounced_permanent" if str(properties.get("bounce_type", "")).lower() == "permanent" else "bounced"
    if what in _UNIQUE:
        marker = f"{content_id}:{what}"
        if marker in seen:
            return seen
        seen = (*seen, marker)[-SEEN_KEPT:]
    add(counter(*key, what))
    return seen


def _sales(update: SalesUpdate, before: Lead, after: Lead, add: _Add) -> None:
    status = update.status
    nurtured = NURTURED if after.sent else NOT_NURTURED
    add(counter("sales", status))
    # Sales took the lead (an SQL): the first `accepted`, or an `opportunity` or `won` given without one.
    if status in _QUALIFIED and not any(r.status in _QUALIFIED for r in before.sales_history):
        add(counter("accuracy", "accepted"))
        if before.qualified_at is not None:
            # MQL-to-SQL: counted in the month the lead qualified, so a month's MQLs meet their outcome.
            add(counter("mql", "accepted"), 1, month_of(before.qualified_at))
            add(counter("accuracy", "accepted_flagged_first"))
    if status in ("opportunity", "won") and update.amount is not None:
        add(counter("revenue", status, nurtured), update.amount)
        add(counter("deals", status, nurtured))
