"""A synthetic population of prospects, as Segment messages, for benchmarks and simulations.

Each prospect follows a persona (a researcher who goes quiet, an evaluator, a fast buyer...) with
randomised timing. Seeded, so the same seed always yields the same journey file.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

PERSONAS = ("researcher", "evaluator", "fast_buyer", "opener", "unsubscriber", "competitor")
_WEIGHTS = (35, 30, 10, 15, 7, 3)
_SENIORITIES = ("ic", "manager", "director", "vp", "c_level")
_INDUSTRIES = ("software", "financial_services", "professional_services", "retail", "manufacturing")


def population(leads: int, start: datetime, days: int = 365, seed: int = 7) -> Iterator[dict[str, Any]]:
    """Segment messages (as JSON-ready dicts) for `leads` prospects who arrive over `days` days."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible simulation, not a secret
    for number in range(leads):
        persona = rng.choices(PERSONAS, _WEIGHTS)[0]
        arrival = start + timedelta(days=rng.uniform(0, days * 0.75))
        yield from _journey(rng, number, persona, arrival, start + timedelta(days=days))


def _journey(rng: random.Random, number: int, persona: str, t: datetime, end: datetime) -> Iterator[dict[str, Any]]:
    user = f"u-{number:05d}"
    anonymous = f"a-{number:05d}"
    counter = iter(range(10_000))

    def message(kind: str, at: datetime, known: bool = True, **fields: Any) -> dict[str, Any]:
        body = {
            "type": kind,
            "messageId": f"{user}-{next(counter)}",
            "timestamp": at.isoformat(),
            "anonymousId": anonymous,
            **fields,
        }
        if known:
            body["userId"] = user
        return body

    def page(at: datetime, path: str, known: bool = True) -> dict[str, Any]:
        return message("page", at, known, properties={"path": path})

    def track(at: datetime, event: str) -> dict[str, Any]:
        return message("track", at, event=event, properties={})

    def later(low: float, high: float) -> datetime:
        return t + timedelta(days=rng.uniform(low, high))

    domain = (
        "rivalnurture.example"
        if persona == "competitor"
        else ("gmail.com" if rng.random() < 0.15 else f"company{number % 400}.example")
    )
    for i in range(rng.randint(0, 3)):  # browsing before they tell us who they are
        yield page(later(-10, 0), f"/blog/post-{i}", known=False)
    yield message(
        "identify",
        t,
        traits={
            "email": f"{user}@{domain}",
            "company": f"Company {number % 400}",
            "company_size": rng.choice([8, 30, 120, 450, 2500]),
            "seniority": rng.choice(_SENIORITIES),
            "industry": rng.choice(_INDUSTRIES),
            "country": rng.choice(["GB", "US", "DE", "NL", "FR"]),
        },
    )
    steps: list[tuple[float, float, str]] = []
    if persona == "researcher":
        steps = [(1, 20, "/blog/a"), (10, 40, "/blog/b"), (30, 60, "/blog/c")]
    elif persona == "evaluator":
        steps = [
            (1, 10, "/blog/a"),
            (5, 30, "/pricing"),
            (10, 40, "track:Case Study Downloaded"),
            (20, 50, "/products/a"),
            (21, 52, "/products/b"),
            (22, 55, "/products/c"),
            (30, 70, "/pricing/team"),
        ]
        if rng.random() < 0.4:
            steps.append((60, 90, "track:Demo Requested"))
    elif persona == "fast_buyer":
        steps = [(0, 2, "/pricing"), (1, 4, "track:Demo Requested"), (4, 10, "track:Demo Booked")]
    elif persona == "opener":
        steps = [(1, 200, "track:Email Opened") for _ in range(6)]
    elif persona == "unsubscriber":
        steps = [(1, 10, "/blog/a"), (10, 40, "track:Unsubscribed")]
    elif persona == "competitor":
        steps = [(0, 3, "/pricing"), (1, 5, "/products/a")]
    for low, high, what in steps:
        at = later(low, high)
        if at >= end:
            continue
        yield track(at, what[6:]) if what.startswith("track:") else page(at, what)
