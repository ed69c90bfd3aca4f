"""Plays one stream of Segment messages through the in-memory engine and through the lead service.

Shared by the differential tests: tests/unit/test_differential.py (the service over the in-memory
fakes) and tests/integration/test_differential.py (the service over the DynamoDB adapters on moto).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from nurture.domain.journey import Effect, JourneyInput, Lead, SalesAlert, Send, Tick, Transition
from nurture.domain.messages import Message
from nurture.domain.programme import Programme, Stage
from nurture.domain.scoring import fit_score
from nurture.pipeline.leads import LeadService
from nurture.pipeline.ports import SendRequest
from nurture.tools.engine import Engine
from tests.fakes import FakeBus, FakeQueue
from tests.support import T0, identify, page, track

PEOPLE = ("ada", "bo", "cy")
# How a person shows up: on one of two devices (anonymousId only), by userId alone, or both at once; or
# on the office's shared computer, whose one anonymousId every person there uses.
CHANNELS = ("device 1", "device 2", "user", "user on device 1", "user on device 2", "shared computer")
ACTIONS = ("pricing", "pricing", "blog", "product", "case study", "demo request", "demo booked", "identify")
GAPS = tuple(timedelta(minutes=m) for m in (0, 1, 20, 180, 60 * 24, 3 * 60 * 24, 10 * 60 * 24, 30 * 60 * 24))
DOMAINS = ("northwind.example", "gmail.com", "rivalnurture.example")
TRAITS: tuple[dict[str, Any], ...] = (
    {},
    {"company_size": 240, "seniority": "vp", "industry": "software", "country": "GB", "timezone": "Europe/London"},
    {"company_size": 12, "seniority": "ic", "country": "US", "timezone": "America/New_York"},
    {"budget_authority": True, "timeline": "this quarter", "problem": "follow-up is slow"},
)
QUIET_DAYS_AFTER = 120  # long enough for awareness to time out into re-engagement and suppression


def _message(index: int, person: str, channel: str, action: str, at: datetime, extra: int) -> Message:
    user = f"u-{person}" if channel.startswith("user") else None
    anonymous = f"a-{person}-{channel[-1]}" if channel.endswith(("1", "2")) else None
    if channel == "shared computer":
        user, anonymous = f"u-{person}", "a-shared"
    ids: dict[str, Any] = {"user": user, "anonymous": anonymous, "message_id": f"m-{index}"}
    if action == "identify":
        email = f"{person}@{DOMAINS[extra % len(DOMAINS)]}"
        return identify(at, **ids, email=email, **TRAITS[extra % len(TRAITS)])
    if action == "pricing":
        return page("/pricing" if extra % 2 else "/pricing/team", at, **ids)
    if action == "blog":
        return page(f"/blog/post-{extra}", at, **ids)
    if action == "product":
        return page(f"/products/feature-{extra}", at, **ids)
    event = {"case study": "Case Study Downloaded", "demo request": "Demo Requested", "demo booked": "Demo Booked"}
    return track(event[action], at, **ids)


@st.composite
def streams(draw: st.DrawFn, max_messages: int = 40) -> list[Message]:
    """Messages in the order they arrive: up to three people on two devices each (and a shared computer),
    visiting anonymously, identifying (linking a device to their userId, or filling in a form on a device
    with only an email), some messages arriving late (after up to three later ones), some delivered twice."""
    people = draw(st.integers(1, len(PEOPLE)))
    actions = draw(
        st.lists(
            st.tuples(
                st.integers(0, people - 1),
                st.sampled_from(CHANNELS),
                st.sampled_from(ACTIONS),
                st.sampled_from(GAPS),
                st.integers(0, 11),
            ),
            min_size=3,
            max_size=max_messages,
        )
    )
    at = T0
    sent: list[Message] = []
    for index, (person, channel, action, gap, extra) in enumerate(actions):
        at += gap
        sent.append(_message(index, PEOPLE[person], channel, action, at, extra))
    delays = draw(st.lists(st.integers(0, 3), min_size=len(sent), max_size=len(sent)))
    late = sorted(((i + delay, i), m) for i, (m, delay) in enumerate(zip(sent, delays, strict=True)))
    arrivals = [m for _, m in late]
    redelivered = draw(st.lists(st.tuples(st.integers(0, len(sent) - 1), st.integers(0, 5)), max_size=3))
    for original, later in redelivered:
        position = arrivals.index(sent[original]) + 1 + later
        arrivals.insert(min(position, len(arrivals)), sent[original])
    return arrivals


def two_devices() -> list[Message]:
    """Ada, known by userId on her laptop; a form fill on her phone makes a second lead; then she logs in on it."""
    return [
        identify(T0, user="u-ada", anonymous="a-laptop", message_id="two-1", email="ada@northwind.example"),
        page("/pricing", T0 + timedelta(days=1), user=None, anonymous="a-phone", message_id="two-2"),
        identify(T0 + timedelta(days=1), user=None, anonymous="a-phone", message_id="two-3", email="ada@gmail.com"),
        track("Case Study Downloaded", T0 + timedelta(days=2), user=None, anonymous="a-phone", message_id="two-4"),
        # the phone's lead still has an email due when it is folded into the laptop's
        identify(T0 + timedelta(days=20), user="u-ada", anonymous="a-phone", message_id="two-5"),
    ]


@dataclass(frozen=True)
class Person:
    """What the comparison looks at for one person (the set of profiles their lead holds)."""

    stage: Stage | None
    intent: float
    fit: int
    next_action_at: datetime | None
    sends: tuple[tuple[Stage, str, int, datetime], ...]
    transitions: tuple[tuple[Stage | None, Stage, str, datetime], ...]
    alerts: tuple[tuple[str, datetime, Stage, float, int], ...]


People = dict[frozenset[str], Person]


class TickLog(Engine):
    """The engine, noting every dispatcher tick it applies: (when, the ticked lead's profiles)."""

    def __init__(self, programme: Programme) -> None:
        super().__init__(programme)
        self.ticks: list[tuple[datetime, frozenset[str]]] = []

    def _apply(self, lead: Lead, given: JourneyInput, now: datetime) -> list[Effect]:
        if isinstance(given, Tick):
            self.ticks.append((now, frozenset(p for p, i in self.profiles.items() if i == lead.lead_id)))
        return super()._apply(lead, given, now)


@dataclass
class Run:
    """One side of the comparison: each lead id ever seen -> a profile it held; the effects it decided."""

    held: dict[str, set[str]] = field(default_factory=dict)
    effects: list[Effect | SendRequest] = field(default_factory=list)

    def saw(self, lead_id: str, profiles: Iterable[str]) -> None:
        self.held.setdefault(lead_id, set()).update(profiles)


def play(stream: Sequence[Message], service: LeadService, programme: Programme) -> tuple[People, People]:
    """Both sides' people after the stream and a quiet spell: {profiles: Person} for the engine, then the service.

    The engine is the reference and keeps its own clock; the service is given exactly the inputs the engine
    applied, in the same order and at the same `now`: each message at its timestamp (also when it arrives
    late), and each dispatcher tick the engine ran on its five-minute grid, to the lead holding the same
    profiles. A tick is only given when the service's due index would also offer the lead to the dispatcher
    (`due_at <= now`), so the two cannot differ by when they look at a lead, only by what they do with it:
    which lead a message joins, what a merge keeps, and what survives a round trip through storage.
    """
    engine = TickLog(programme)
    ours, theirs = Run(), Run()
    for message in stream:
        engine.receive(message)
        _tick_service(engine, service, theirs)
        ours.saw(engine.profiles[message.profile_ids[0]], message.profile_ids)
        theirs.saw(service.receive([message], message.timestamp), message.profile_ids)
    until = max(m.timestamp for m in stream) + timedelta(days=QUIET_DAYS_AFTER)
    engine.advance(until)
    _tick_service(engine, service, theirs)
    ours.effects = list(engine.effects)
    bus, queue = service.ports.bus, service.ports.queue
    assert isinstance(bus, FakeBus), "the effects are read back from the in-memory bus"
    assert isinstance(queue, FakeQueue), "and the in-memory send queue"
    theirs.effects = [*bus.published, *queue.queued]
    profiles = {p for m in stream for p in m.profile_ids}
    engine_leads = {lead_id: engine.leads[lead_id] for lead_id in set(engine.profiles.values())}
    engine_people = _people(engine_leads, engine.profiles, ours, programme, until)
    links = service.ports.leads.leads_for(profiles)
    service_leads: dict[str, Lead] = {}
    for lead_id in set(links.values()):
        stored = service.ports.leads.get(lead_id)
        assert stored is not None, f"{sorted(p for p, i in links.items() if i == lead_id)} link to a lead that is gone"
        assert stored.profiles == frozenset(p for p, i in links.items() if i == lead_id), "links and lead agree"
        assert stored.due_at == stored.lead.next_action_at(programme), "the due index agrees with the lead"
        service_leads[lead_id] = stored.lead
    return engine_people, _people(service_leads, links, theirs, programme, until)


def _tick_service(engine: TickLog, service: LeadService, run: Run) -> None:
    """Give the service the ticks the engine ran since last time."""
    for at, profiles in engine.ticks:
        lead_ids = set(service.ports.leads.leads_for(profiles).values())
        assert len(lead_ids) == 1, f"the engine's lead of {sorted(profiles)} is {len(lead_ids)} leads in the service"
        [lead_id] = lead_ids
        stored = service.ports.leads.get(lead_id)
        assert stored is not None
        due_at = stored.due_at
        assert due_at is not None, f"the engine ticked {sorted(profiles)} at {at}; the service has nothing due"
        assert due_at <= at, f"the engine ticked {sorted(profiles)} at {at}; the dispatcher waits until {due_at}"
        service.tick(lead_id, at)
        run.saw(lead_id, profiles)
    engine.ticks.clear()


def _people(leads: dict[str, Lead], links: dict[str, str], run: Run, programme: Programme, until: datetime) -> People:
    person_of_lead = {lead_id: frozenset(p for p, i in links.items() if i == lead_id) for lead_id in leads}
    # A lead folded into another is known by the profiles it held; they all lead to the survivor now.
    person_of = {lead_id: person_of_lead[links[next(iter(held))]] for lead_id, held in run.held.items()}
    sends: dict[frozenset[str], list[Any]] = {}
    transitions: dict[frozenset[str], list[Any]] = {}
    alerts: dict[frozenset[str], list[Any]] = {}
    for effect in run.effects:
        person = person_of[effect.lead_id]
        if isinstance(effect, Send | SendRequest):
            at = effect.at if isinstance(effect, Send) else effect.due_at
            sends.setdefault(person, []).append((effect.sequence, effect.content_id, effect.step, at))
        elif isinstance(effect, Transition):
            transitions.setdefault(person, []).append((effect.from_stage, effect.to_stage, effect.reason, effect.at))
        elif isinstance(effect, SalesAlert):
            summary = (effect.reason, effect.at, effect.stage, round(effect.intent, 3), effect.fit)
            alerts.setdefault(person, []).append(summary)
    return {
        person: Person(
            stage=lead.stage,
            intent=round(lead.intent(programme, until), 3),
            fit=fit_score(lead.traits, programme).score,
            next_action_at=lead.next_action_at(programme),
            # In the order decided: both sides applied the same inputs in the same order.
            sends=tuple(sends.get(person, [])),
            transitions=tuple(transitions.get(person, [])),
            alerts=tuple(alerts.get(person, [])),
        )
        for lead_id, lead in leads.items()
        for person in [person_of_lead[lead_id]]
    }
