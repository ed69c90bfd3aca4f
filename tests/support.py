"""Builders shared by the tests: Segment messages, the starter programme and a way to run a journey."""

from __future__ import annotations

import importlib.util
import itertools
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from nurture.domain.journey import Effect, JourneyInput, Lead, SalesAlert, Send, Tick, Transition, new_lead, step
from nurture.domain.messages import IdentifyMessage, PageMessage, TrackMessage
from nurture.domain.programme import Programme, load_programme
from nurture.pipeline.leads import LeadService

ROOT = Path(__file__).resolve().parents[1]
STARTER = ROOT / "content" / "programme.yaml"
T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)  # a Monday, inside London business hours
_ids = itertools.count(1)


@cache
def starter() -> Programme:
    return load_programme(STARTER.read_text(), source=str(STARTER))


def starter_yaml() -> str:
    return STARTER.read_text()


def days(n: float) -> timedelta:
    return timedelta(days=n)


def _common(at: datetime, user: str | None, anonymous: str | None, message_id: str | None) -> dict[str, Any]:
    fields: dict[str, Any] = {"messageId": message_id or f"m-{next(_ids)}", "timestamp": at}
    if user is not None:
        fields["userId"] = user
    if anonymous is not None:
        fields["anonymousId"] = anonymous
    return fields


def page(
    path: str,
    at: datetime = T0,
    user: str | None = "u-1",
    anonymous: str | None = None,
    message_id: str | None = None,
    **properties: Any,
) -> PageMessage:
    return PageMessage.model_validate(
        {
            "type": "page",
            "properties": {"path": path, **properties},
            **_common(at, user, anonymous, message_id),
        }
    )


def track(
    event: str,
    at: datetime = T0,
    user: str | None = "u-1",
    anonymous: str | None = None,
    message_id: str | None = None,
    **properties: Any,
) -> TrackMessage:
    return TrackMessage.model_validate(
        {
            "type": "track",
            "event": event,
            "properties": properties,
            **_common(at, user, anonymous, message_id),
        }
    )


def identify(
    at: datetime = T0,
    user: str | None = "u-1",
    anonymous: str | None = None,
    message_id: str | None = None,
    **traits: Any,
) -> IdentifyMessage:
    traits.setdefault("email", f"{user or anonymous}@northwind.example")
    return IdentifyMessage.model_validate(
        {"type": "identify", "traits": traits, **_common(at, user, anonymous, message_id)}
    )


class Journey:
    """One lead driven through the state machine, collecting every effect."""

    def __init__(self, programme: Programme | None = None, lead: Lead | None = None) -> None:
        self.programme = programme or starter()
        self.lead = lead or new_lead("u-1")
        self.effects: list[Effect] = []

    def apply(self, given: JourneyInput, now: datetime | None = None) -> list[Effect]:
        """Apply one input; a message first lets the clock run to its timestamp, as the engine does."""
        if now is None:
            now = given.timestamp if hasattr(given, "timestamp") else T0
            self.run_until(now)
        outcome = step(self.lead, given, self.programme, now)
        self.lead = outcome.lead
        self.effects += outcome.effects
        return list(outcome.effects)

    def feed(self, messages: Iterable[JourneyInput]) -> Journey:
        for message in messages:
            self.apply(message)
        return self

    def run_until(self, until: datetime) -> Journey:
        """Tick whenever the lead is due, as the dispatcher would, up to `until`."""
        for _ in range(10_000):
            due = self.lead.next_action_at(self.programme)
            if due is None or due > until:
                return self
            self.apply(Tick(), now=due)
        raise AssertionError("the lead never stopped being due")

    @property
    def transitions(self) -> list[Transition]:
        return [e for e in self.effects if isinstance(e, Transition)]

    @property
    def sends(self) -> list[Send]:
        return [e for e in self.effects if isinstance(e, Send)]

    @property
    def alerts(self) -> list[SalesAlert]:
        return [e for e in self.effects if isinstance(e, SalesAlert)]

    @property
    def stages(self) -> list[str]:
        return [t.to_stage.value for t in self.transitions]


def known_lead(at: datetime = T0, **traits: Any) -> Journey:
    """A journey whose lead has just told us its email."""
    journey = Journey()
    journey.apply(identify(at, **traits))
    return journey


def ada(service: LeadService) -> str:
    """Ada: read the pricing page anonymously, then identified herself; the first awareness email is due.
    Returns her lead id."""
    found = service.receive(
        [
            page("/pricing", user=None, anonymous="a-ada"),
            identify(user="u-ada", anonymous="a-ada", email="ada@northwind.example", company_size=240, seniority="vp"),
        ],
        T0,
    )
    service.tick(found, T0)
    return found


def import_handler(function: str, name: str) -> ModuleType:
    """Import functions/<dir>/handler.py afresh under `name`, as Lambda's init phase does (settings checked, hooks
    registered, decorators applied)."""
    from nurture import constants

    spec = importlib.util.spec_from_file_location(
        name, ROOT / "functions" / constants.FUNCTION_DIRS[function] / "handler.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
