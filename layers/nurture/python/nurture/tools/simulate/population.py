"""The population model: who the synthetic buyers are, what they hide (fit, when they are ready to buy) and how they
behave. Every number is a field of `Population`, settable from a YAML or JSON file (docs/simulate.md)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Persona(_Strict):
    name: str
    weight: float = Field(gt=0, description="Relative share of the population")
    ready_share: float = Field(ge=0, le=1, description="Chance the buyer becomes ready to buy at some point")
    ready_after_days: tuple[float, float] = Field(description="When, after sign-up, a buyer who will be ready is")
    sessions_per_week: float = Field(ge=0, description="Website visits a week while researching")


class Population(_Strict):
    """Every parameter of the synthetic buyers, with defaults documented in docs/simulate.md."""

    personas: tuple[Persona, ...] = (
        Persona(name="researcher", weight=40, ready_share=0.05, ready_after_days=(60, 300), sessions_per_week=0.25),
        Persona(name="evaluator", weight=30, ready_share=0.4, ready_after_days=(10, 120), sessions_per_week=0.5),
        Persona(name="fast_buyer", weight=8, ready_share=0.9, ready_after_days=(0, 14), sessions_per_week=1.0),
        Persona(name="tyre_kicker", weight=15, ready_share=0.0, ready_after_days=(0, 0), sessions_per_week=0.3),
        Persona(name="dormant", weight=7, ready_share=0.0, ready_after_days=(0, 0), sessions_per_week=0.03),
    )
    # Hidden fit: traits, and how fit changes the chance of being ready.
    company_sizes: dict[int, float] = {8: 25, 30: 25, 120: 25, 450: 15, 2500: 10}
    seniorities: dict[str, float] = {"ic": 35, "manager": 30, "director": 18, "vp": 10, "c_level": 7}
    industries: dict[str, float] = {
        "software": 30,
        "financial_services": 15,
        "professional_services": 20,
        "retail": 20,
        "manufacturing": 15,
    }
    good_fit_min_company_size: int = 50
    good_fit_industries: tuple[str, ...] = ("software", "financial_services", "professional_services")
    good_fit_ready_multiplier: float = Field(default=1.5, ge=0)
    poor_fit_ready_multiplier: float = Field(default=0.5, ge=0)
    personal_email_share: float = Field(default=0.1, ge=0, le=1)
    trait_told_share: float = Field(default=0.6, ge=0, le=1, description="Chance each optional trait is on the form")
    # Arrivals and browsing.
    arrival_share: float = Field(default=0.5, gt=0, le=1, description="Sign-ups spread over this share of the run")
    pre_signup_pages: float = Field(default=0.5, ge=0, description="Mean anonymous page views before sign-up")
    pages_per_session: tuple[int, int] = (1, 2)
    quiet_spell_share: float = Field(default=0.15, ge=0, le=1, description="Chance a gap between visits is long")
    quiet_spell_days: tuple[float, float] = (20, 60)
    ready_sessions_multiplier: float = Field(default=4.0, ge=0, description="Visits while ready, times the usual")
    after_window_sessions_multiplier: float = Field(default=0.3, ge=0, description="Visits after the window closed")
    ready_window_days: tuple[float, float] = (20, 45)
    browsing_pages: dict[str, float] = {"/blog/": 70, "/products/": 22, "/pricing": 8}
    ready_pages: dict[str, float] = {"/pricing": 30, "/products/": 35, "case_study": 20, "/blog/": 15}
    demo_request_per_ready_session: float = Field(default=0.12, ge=0, le=1)
    demo_request_per_other_session: float = Field(default=0.003, ge=0, le=1)
    # Email reactions: typical B2B figures (docs/simulate.md gives the sources).
    open_rate: float = Field(default=0.2, ge=0, le=1)
    open_rate_ready: float = Field(default=0.45, ge=0, le=1)
    click_given_open: float = Field(default=0.1, ge=0, le=1)
    click_given_open_ready: float = Field(default=0.3, ge=0, le=1)
    unsubscribe_rate: float = Field(default=0.003, ge=0, le=1, description="Per email delivered")
    complaint_rate: float = Field(default=0.0005, ge=0, le=1, description="Per email delivered")
    invalid_address_share: float = Field(default=0.005, ge=0, le=1, description="Addresses that bounce permanently")
    soft_bounce_rate: float = Field(default=0.006, ge=0, le=1, description="Per email, transient")
    email_links: dict[str, str] = {
        "awareness": "/blog/",
        "consideration": "/products/",
        "decision": "/pricing",
        "re_engagement": "/blog/",
    }
    # Sales.
    sales_response_hours: float = Field(default=24, ge=0)
    win_rate: float = Field(default=0.3, ge=0, le=1, description="Chance a ready, accepted buyer buys")
    deal_median: float = Field(default=12_000, gt=0)
    deal_sigma: float = Field(default=0.6, ge=0, description="Spread of the log-normal deal amount")
    days_to_close: tuple[float, float] = (14, 60)
    minutes_per_lead: float = Field(default=20, ge=0, description="Sales time to qualify a handed-over lead")
    # The classic drip it is compared with.
    drip_emails: int = Field(default=6, ge=0)
    drip_days: float = Field(default=30, gt=0, description="Emails spread over these days; then handed to sales")

    @model_validator(mode="after")
    def _ranges(self) -> Population:
        for name in ("ready_window_days", "quiet_spell_days", "days_to_close", "pages_per_session"):
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(f"{name}: the first value must not exceed the second")
        return self


def load_population(path: Path | None) -> Population:
    """The defaults, overridden by a YAML or JSON file (JSON is YAML)."""
    if path is None:
        return Population()
    data: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return Population.model_validate(data)


@dataclass(frozen=True)
class Buyer:
    """One synthetic buyer: what the engine may learn (traits) and what only the simulation knows."""

    index: int
    user_id: str
    persona: str
    signup_at: datetime
    traits: dict[str, Any]
    good_fit: bool
    invalid_address: bool
    ready_at: datetime | None
    ready_until: datetime | None
    sessions_per_week: float

    def ready(self, at: datetime) -> bool:
        return self.ready_at is not None and self.ready_until is not None and self.ready_at <= at < self.ready_until


def rng_for(seed: int, buyer: int, stream: str) -> random.Random:
    """A buyer's own random stream, so the same buyer does the same things in the behavioural and the drip run."""
    return random.Random(f"{seed}/{buyer}/{stream}")  # noqa: S311 - a reproducible simulation, not a secret


def pick(rng: random.Random, weights: dict[Any, float]) -> Any:
    keys = list(weights)
    return rng.choices(keys, [weights[k] for k in keys])[0]


def draw_buyers(population: Population, leads: int, start: datetime, days: int, seed: int) -> list[Buyer]:
    """The buyers and their hidden state; a buyer's draw depends only on the seed and its number."""
    buyers = []
    personas = {p.name: p for p in population.personas}
    for index in range(leads):
        rng = rng_for(seed, index, "who")
        persona = personas[pick(rng, {p.name: p.weight for p in population.personas})]
        signup_at = start + timedelta(days=rng.uniform(0, days * population.arrival_share))
        size = pick(rng, population.company_sizes)
        seniority = pick(rng, population.seniorities)
        industry = pick(rng, population.industries)
        good_fit = size >= population.good_fit_min_company_size and industry in population.good_fit_industries
        user_id = f"sim-{index:06d}"
        domain = "gmail.com" if rng.random() < population.personal_email_share else f"company{index % 997}.example"
        traits: dict[str, Any] = {"email": f"{user_id}@{domain}", "company": f"Company {index % 997}"}
        for name, value in (("company_size", size), ("seniority", seniority), ("industry", industry)):
            if rng.random() < population.trait_told_share:
                traits[name] = value
        multiplier = population.good_fit_ready_multiplier if good_fit else population.poor_fit_ready_multiplier
        ready_at = ready_until = None
        if rng.random() < min(1.0, persona.ready_share * multiplier):
            ready_at = signup_at + timedelta(days=rng.uniform(*persona.ready_after_days))
            ready_until = ready_at + timedelta(days=rng.uniform(*population.ready_window_days))
        buyers.append(
            Buyer(
                index=index,
                user_id=user_id,
                persona=persona.name,
                signup_at=signup_at,
                traits=traits,
                good_fit=good_fit,
                invalid_address=rng.random() < population.invalid_address_share,
                ready_at=ready_at,
                ready_until=ready_until,
                sessions_per_week=persona.sessions_per_week,
            )
        )
    return buyers
