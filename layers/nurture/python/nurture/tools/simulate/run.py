"""The two runs: the synthetic buyers through the real engine on a simulated clock, and through a classic drip.

The behavioural run feeds the buyers' visits to `Engine` in time order on the dispatcher's five-minute grid; each
`Send` the engine makes is answered by the buyer (opens, clicks, bounces, unsubscribes, fed back as the reserved
events SES feedback produces) and each `SalesAlert` by sales (accepted only if the buyer is really ready).
"""

from __future__ import annotations

import heapq
import statistics
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing import get_context
from typing import Any

from nurture.constants import DISPATCH_SCHEDULE_MINUTES
from nurture.domain.journey import Effect, Measured, SalesAlert, SalesUpdate, Send
from nurture.domain.messages import segment_message
from nurture.domain.metrics import counter, month_of, sent_counts
from nurture.domain.programme import Programme
from nurture.tools.engine import Engine
from nurture.tools.simulate.behaviour import DEMO_REQUESTED, Messages, react, visits
from nurture.tools.simulate.population import Buyer, Population, draw_buyers, rng_for

START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
GRID = timedelta(minutes=DISPATCH_SCHEDULE_MINUTES)
Progress = Callable[[int], None]


@dataclass
class Tally:
    """What one run did with the buyers: the figures the comparison shows."""

    name: str
    leads: int = 0
    ready_in_run: int = 0
    emails_sent: int = 0
    unsubscribed: int = 0
    handoffs: int = 0
    handed_leads: set[str] = field(default_factory=set)
    rejected: int = 0
    accepted_days: dict[str, float] = field(default_factory=dict)
    won: int = 0
    revenue: float = 0.0

    def add(self, other: Tally) -> None:
        self.emails_sent += other.emails_sent
        self.unsubscribed += other.unsubscribed
        self.handoffs += other.handoffs
        self.handed_leads |= other.handed_leads
        self.rejected += other.rejected
        self.accepted_days |= other.accepted_days
        self.won += other.won
        self.revenue += other.revenue

    def row(self, minutes_per_lead: float) -> dict[str, float | int | None]:
        sql = len(self.accepted_days)
        return {
            "leads": self.leads,
            "buyers_ready_during_run": self.ready_in_run,
            "leads_handed_to_sales": len(self.handed_leads),
            "handoffs": self.handoffs,
            "sql": sql,
            "mql_to_sql": sql / len(self.handed_leads) if self.handed_leads else None,
            "median_days_to_sql": statistics.median(self.accepted_days.values()) if sql else None,
            "emails_sent": self.emails_sent,
            "emails_per_sql": self.emails_sent / sql if sql else None,
            "unsubscribed": self.unsubscribed,
            "rejected_handoffs": self.rejected,
            "sales_hours_on_unready_leads": self.rejected * minutes_per_lead / 60,
            "won": self.won,
            "revenue_won": self.revenue,
        }


@dataclass
class Outcome:
    """A sales status, as `--export` writes it."""

    lead_id: str
    status: str
    at: datetime
    amount: float | None = None


@dataclass
class Simulation:
    population: Population
    buyers: list[Buyer]
    start: datetime
    end: datetime
    behavioural: Tally
    counters: dict[str, dict[str, float]]
    messages: list[dict[str, Any]]
    outcomes: list[Outcome]


class _Sales:
    """Sales' answer to a handoff, the same in both runs: accept only a buyer who is really ready."""

    def __init__(self, buyer: Buyer, population: Population, seed: int) -> None:
        self.buyer = buyer
        self.population = population
        self.rng = rng_for(seed, buyer.index, "sales")
        self.pending = False
        self.accepted = False

    def decide(self, at: datetime) -> tuple[SalesUpdate, tuple[SalesUpdate, datetime] | None]:
        """The status now and, if accepted, the deal's outcome (won with an amount, or lost) and when it closes."""
        self.pending = False
        if not self.buyer.ready(at):
            return SalesUpdate(status="rejected", reason="not ready to buy"), None
        self.accepted = True
        wins = self.rng.random() < self.population.win_rate
        amount = round(self.population.deal_median * self.rng.lognormvariate(0, self.population.deal_sigma), -2)
        closes = at + timedelta(days=self.rng.uniform(*self.population.days_to_close))
        final = SalesUpdate(status="won", amount=amount) if wins else SalesUpdate(status="lost", reason="no decision")
        return SalesUpdate(status="accepted"), (final, closes)


SHARDS = 2  # fixed, so the figures depend on the seed alone, however many processes run the shards


def simulate(
    programme: Programme,
    population: Population,
    leads: int,
    days: int,
    seed: int,
    keep_messages: bool = False,
    progress: Progress | None = None,
    workers: int = SHARDS,
) -> Simulation:
    """The behavioural run: every buyer through the real engine, with its emails and sales' answers fed back.

    Buyers never meet, so they run in `SHARDS` engines of their own (buyer n in shard n % SHARDS): with two
    workers, one shard runs in a second process while this one runs the other and shows the progress.
    """
    end = START + timedelta(days=days)
    buyers = draw_buyers(population, leads, START, days, seed)
    shards = [buyers[k::SHARDS] for k in range(SHARDS)]
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers - 1, mp_context=get_context("fork")) as pool:
            others = [
                pool.submit(_shard, programme, population, shard, end, seed, keep_messages, None)
                for shard in shards[1:]
            ]
            parts = [_shard(programme, population, shards[0], end, seed, keep_messages, progress)]
            parts += [future.result() for future in others]
    else:
        parts = [_shard(programme, population, shards[0], end, seed, keep_messages, progress)]
        parts += [_shard(programme, population, shard, end, seed, keep_messages, None) for shard in shards[1:]]
    tally = Tally("behavioural", leads=leads, ready_in_run=sum(1 for b in buyers if _ready_in_run(b, end)))
    counters: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for part in parts:
        tally.add(part.tally)
        for month, values in part.counters.items():
            for name, amount in values.items():
                counters[month][name] += amount
    return Simulation(
        population=population,
        buyers=buyers,
        start=START,
        end=end,
        behavioural=tally,
        counters={month: dict(sorted(values.items())) for month, values in sorted(counters.items())},
        messages=sorted((m for part in parts for m in part.messages), key=lambda m: m["timestamp"]),
        outcomes=sorted((o for part in parts for o in part.outcomes), key=lambda o: o.at),
    )


@dataclass
class _Part:
    tally: Tally
    counters: dict[str, dict[str, float]]
    messages: list[dict[str, Any]]
    outcomes: list[Outcome]


def _shard(
    programme: Programme,
    population: Population,
    buyers: list[Buyer],
    end: datetime,
    seed: int,
    keep_messages: bool,
    progress: Progress | None,
) -> _Part:
    tally = Tally("behavioural")
    engine = Engine(programme)
    counters: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    kept: list[dict[str, Any]] = []
    outcomes: list[Outcome] = []
    writers = [Messages(b) for b in buyers]
    emails = [rng_for(seed, b.index, "email") for b in buyers]
    sales = [_Sales(b, population, seed) for b in buyers]
    stopped = [False] * len(buyers)
    buyer_of: dict[str, int] = {}
    queue: list[tuple[datetime, int, int, str, Any]] = []
    order = 0

    def push(at: datetime, index: int, kind: str, payload: Any) -> None:
        nonlocal order
        heapq.heappush(queue, (at, order, index, kind, payload))
        order += 1

    for n, buyer in enumerate(buyers):
        for message in visits(buyer, population, writers[n], end, rng_for(seed, buyer.index, "visits")):
            push(message["timestamp"], n, "visit", message)

    def handle(effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Measured):
                for month, name, amount in effect.counts:
                    counters[month][name] += amount
            elif isinstance(effect, Send):
                _sent(effect)
            elif isinstance(effect, SalesAlert):
                _alerted(effect)

    def _sent(send: Send) -> None:
        tally.emails_sent += 1
        for month, name, amount in sent_counts(send.sequence, send.content_id, 0, send.at):
            counters[month][name] += amount
        index = buyer_of[send.lead_id]
        if stopped[index]:
            return
        email = {"content_id": send.content_id, "sequence": send.sequence.value, "variant": 0}
        link = population.email_links.get(send.sequence.value, "/blog/")
        reaction = react(buyers[index], population, writers[index], emails[index], email, link, send.at)
        stopped[index] = reaction.stops
        tally.unsubscribed += reaction.unsubscribed
        if reaction.delivered:
            # Counted here, as the email-events Lambda's `Email Delivered` would be: that event changes no journey,
            # and feeding it would add an engine input per email.
            counters[month_of(send.at)][counter("email", send.sequence.value, send.content_id, 0, "delivered")] += 1
        for message in reaction.messages:
            push(message["timestamp"], index, "feedback", message)

    def _alerted(alert: SalesAlert) -> None:
        index = buyer_of.get(alert.lead_id)
        if index is None or sales[index].pending or sales[index].accepted:
            return
        sales[index].pending = True
        push(alert.at + timedelta(hours=population.sales_response_hours), index, "decide", alert.lead_id)

    def feed(message: dict[str, Any]) -> None:
        engine.receive(segment_message.validate_python(message))
        if keep_messages:
            kept.append(message)

    def sales_status(index: int, lead_id: str, update: SalesUpdate, at: datetime) -> None:
        engine.update_sales(lead_id, update, at)
        outcomes.append(Outcome(buyers[index].user_id, update.status, at, update.amount))

    at, day = START, 0
    while at < end:
        engine.advance(at)
        handle(_taken(engine))
        step_end = at + GRID
        while queue and queue[0][0] < step_end:
            when, _, index, kind, payload = heapq.heappop(queue)
            buyer = buyers[index]
            if kind == "visit":
                if sales[index].accepted:
                    continue  # sales has the buyer now: its visits no longer reach nurture
                feed(payload)
                if payload["type"] == "identify":
                    buyer_of[engine.profiles[f"u#{buyer.user_id}"]] = index
            elif kind == "feedback":
                feed(payload)
            elif kind == "decide":
                update, later = sales[index].decide(when)
                tally.handoffs += 1  # counted once sales has answered, as the drip's are
                tally.handed_leads.add(buyer.user_id)
                sales_status(index, payload, update, when)
                if later is None:
                    tally.rejected += 1
                else:
                    tally.accepted_days[buyer.user_id] = (when - buyer.signup_at).total_seconds() / 86400
                    push(later[1], index, "close", (payload, later[0]))
            else:
                lead_id, final = payload
                sales_status(index, lead_id, final, when)
                if final.status == "won":
                    tally.won += 1
                    tally.revenue += final.amount or 0.0
            handle(_taken(engine))
        at = step_end
        if progress is not None and (at - START).days > day:
            day = (at - START).days
            progress(day)
    engine.advance(end)
    handle(_taken(engine))
    return _Part(tally, {m: dict(v) for m, v in counters.items()}, kept, outcomes)


def _taken(engine: Engine) -> list[Effect]:
    """The effects the engine made since last asked (whichever call made them), and forget them."""
    effects, engine.effects = engine.effects, []
    return effects


def _ready_in_run(buyer: Buyer, end: datetime) -> bool:
    return buyer.ready_at is not None and buyer.ready_at < end


def drip(simulation: Simulation, seed: int) -> Tally:
    """The same buyers through a classic drip: `drip_emails` emails over `drip_days` days from sign-up, then every
    lead handed to sales (earlier if it asks for a demo); sales accepts only the ready ones."""
    population, end = simulation.population, simulation.end
    tally = Tally("drip", leads=len(simulation.buyers), ready_in_run=simulation.behavioural.ready_in_run)
    spacing = timedelta(days=population.drip_days / population.drip_emails) if population.drip_emails else None
    for buyer in simulation.buyers:
        writer, sales = Messages(buyer), _Sales(buyer, population, seed)
        own = list(visits(buyer, population, writer, end, rng_for(seed, buyer.index, "visits")))
        handoffs = [m["timestamp"] for m in own if m.get("event") == DEMO_REQUESTED]
        day_30 = buyer.signup_at + timedelta(days=population.drip_days)
        if day_30 < end:
            handoffs.append(day_30)
        accepted_at = _drip_sales(buyer, population, sales, sorted(handoffs), end, tally)
        rng = rng_for(seed, buyer.index, "email")
        for number in range(population.drip_emails if spacing else 0):
            assert spacing is not None
            sent_at = buyer.signup_at + number * spacing
            if sent_at >= end or (accepted_at is not None and sent_at >= accepted_at):
                break
            tally.emails_sent += 1
            email = {"content_id": f"drip-{number + 1}", "sequence": "drip", "variant": 0}
            reaction = react(buyer, population, writer, rng, email, "/blog/", sent_at)
            tally.unsubscribed += reaction.unsubscribed
            if reaction.stops:
                break
    return tally


def _drip_sales(
    buyer: Buyer, population: Population, sales: _Sales, handoffs: list[datetime], end: datetime, tally: Tally
) -> datetime | None:
    """Sales' answers to the drip's handoffs of one buyer; when it was accepted, if it was."""
    busy_until = None
    for handed in handoffs:
        if busy_until is not None and handed < busy_until:
            continue  # sales is still looking at the last handoff
        decided = handed + timedelta(hours=population.sales_response_hours)
        if decided >= end:
            break
        tally.handoffs += 1
        tally.handed_leads.add(buyer.user_id)
        _, later = sales.decide(decided)
        busy_until = decided
        if later is None:
            tally.rejected += 1
            continue
        tally.accepted_days[buyer.user_id] = (decided - buyer.signup_at).total_seconds() / 86400
        final, closes = later
        if closes < end and final.status == "won":
            tally.won += 1
            tally.revenue += final.amount or 0.0
        return decided
    return None


def readiness(buyer: Buyer) -> dict[str, Any]:
    """A buyer's hidden state, as truth.json writes it."""
    return {
        "persona": buyer.persona,
        "good_fit": buyer.good_fit,
        "invalid_address": buyer.invalid_address,
        "signup_at": iso(buyer.signup_at),
        "ready_at": iso(buyer.ready_at) if buyer.ready_at else None,
        "ready_until": iso(buyer.ready_until) if buyer.ready_until else None,
    }


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")
