"""What a synthetic buyer does: visits the website (as Segment messages) and reacts to the emails it is sent.

Each buyer has its own random streams (`rng_for`), so its visits are the same whichever programme it is in.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from nurture.domain.journey import BOUNCED, COMPLAINED, UNSUBSCRIBED
from nurture.domain.system_events import CLICKED, OPENED
from nurture.tools.simulate.population import Buyer, Population, pick

PRODUCT_PAGES = ("overview", "scoring", "sequences", "alerts", "reports", "integrations")
CASE_STUDY = "case_study"
DEMO_REQUESTED = "Demo Requested"


class Messages:
    """Segment messages of one buyer, as the API stores them (timestamps stay datetimes until exported)."""

    def __init__(self, buyer: Buyer) -> None:
        self.buyer = buyer
        self.count = 0

    def _base(self, kind: str, at: datetime, known: bool) -> dict[str, Any]:
        self.count += 1
        body: dict[str, Any] = {
            "type": kind,
            "messageId": f"{self.buyer.user_id}-{self.count}",
            "anonymousId": f"anon-{self.buyer.user_id}",
            "timestamp": at,
        }
        if known:
            body["userId"] = self.buyer.user_id
        return body

    def page(self, at: datetime, where: str, rng: random.Random, known: bool = True) -> dict[str, Any]:
        if where == CASE_STUDY:
            return self.track(at, "Case Study Downloaded", {"title": f"case-{rng.randint(1, 8)}"})
        if where == "/blog/":
            path = f"/blog/post-{rng.randint(1, 40)}"
        elif where == "/products/":
            path = f"/products/{rng.choice(PRODUCT_PAGES)}"
        else:
            path = where
        return self._base("page", at, known) | {"properties": {"path": path}}

    def track(self, at: datetime, event: str, properties: dict[str, Any]) -> dict[str, Any]:
        return self._base("track", at, True) | {"event": event, "properties": properties}

    def identify(self, at: datetime) -> dict[str, Any]:
        return self._base("identify", at, True) | {"traits": dict(self.buyer.traits)}


def visits(
    buyer: Buyer, population: Population, messages: Messages, end: datetime, rng: random.Random
) -> Iterator[dict[str, Any]]:
    """The buyer's own website activity, sign-up included, in time order; ends at `end`."""
    at = buyer.signup_at - timedelta(days=rng.uniform(1, 10))
    for _ in range(_poisson(rng, population.pre_signup_pages)):
        at += timedelta(hours=rng.uniform(1, 24))
        if at < buyer.signup_at:
            yield messages.page(at, pick(rng, population.browsing_pages), rng, known=False)
    yield messages.identify(buyer.signup_at)
    at = buyer.signup_at
    while True:
        rate = buyer.sessions_per_week * _multiplier(buyer, population, at)
        if rate <= 0:
            return
        gap = timedelta(days=rng.expovariate(rate / 7))
        if rng.random() < population.quiet_spell_share:
            gap += timedelta(days=rng.uniform(*population.quiet_spell_days))
        if buyer.ready_at is not None and at < buyer.ready_at < at + gap:
            gap = buyer.ready_at - at + timedelta(hours=rng.uniform(1, 48))  # a buyer comes back when ready
        at += gap
        if at >= end:
            return
        ready = buyer.ready(at)
        mix = population.ready_pages if ready else population.browsing_pages
        moment = at
        for _ in range(rng.randint(*population.pages_per_session)):
            yield messages.page(moment, pick(rng, mix), rng)
            moment += timedelta(minutes=rng.uniform(1, 6))
        demo = population.demo_request_per_ready_session if ready else population.demo_request_per_other_session
        if rng.random() < demo:
            yield messages.track(moment, DEMO_REQUESTED, {})


def _multiplier(buyer: Buyer, population: Population, at: datetime) -> float:
    if buyer.ready(at):
        return population.ready_sessions_multiplier
    if buyer.ready_until is not None and at >= buyer.ready_until:
        return population.after_window_sessions_multiplier
    return 1.0


def _poisson(rng: random.Random, mean: float) -> int:
    count, total = 0, rng.expovariate(1.0) if mean > 0 else float("inf")
    while total < mean:
        count += 1
        total += rng.expovariate(1.0)
    return count


@dataclass(frozen=True)
class Reaction:
    """What a buyer did with one email: the feedback messages, and whether it stops email (unsubscribe...)."""

    messages: list[dict[str, Any]]
    stops: bool
    unsubscribed: bool
    delivered: bool = True


def react(
    buyer: Buyer,
    population: Population,
    messages: Messages,
    rng: random.Random,
    email: dict[str, Any],
    link: str,
    sent_at: datetime,
) -> Reaction:
    """A bounce, or opens, clicks (then the page linked), a complaint or an unsubscribe, as SES and the site report."""
    if buyer.invalid_address:
        bounce = messages.track(sent_at + timedelta(minutes=1), BOUNCED, email | {"bounce_type": "permanent"})
        return Reaction([bounce], stops=True, unsubscribed=False, delivered=False)
    if rng.random() < population.soft_bounce_rate:
        bounce = messages.track(sent_at + timedelta(minutes=1), BOUNCED, email | {"bounce_type": "transient"})
        return Reaction([bounce], stops=False, unsubscribed=False, delivered=False)
    ready = buyer.ready(sent_at)
    out: list[dict[str, Any]] = []
    at = sent_at + timedelta(minutes=2 + rng.expovariate(1 / 240))
    if rng.random() < (population.open_rate_ready if ready else population.open_rate):
        out.append(messages.track(at, OPENED, dict(email)))
        if rng.random() < (population.click_given_open_ready if ready else population.click_given_open):
            at += timedelta(minutes=rng.uniform(1, 10))
            clicked = messages.page(at + timedelta(seconds=30), link, rng)
            path = clicked.get("properties", {}).get("path", link)
            out.append(messages.track(at, CLICKED, email | {"path": path}))
            out.append(clicked)
    if rng.random() < population.complaint_rate:
        out.append(messages.track(at + timedelta(minutes=5), COMPLAINED, dict(email)))
        return Reaction(out, stops=True, unsubscribed=False)
    if rng.random() < population.unsubscribe_rate:
        out.append(messages.track(at + timedelta(minutes=5), UNSUBSCRIBED, {}))
        return Reaction(out, stops=True, unsubscribed=True)
    return Reaction(out, stops=False, unsubscribed=False)
