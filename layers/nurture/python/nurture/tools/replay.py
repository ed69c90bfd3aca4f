"""`nurture replay`: run a journey file of Segment messages through the engine and show what happened."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

from pydantic import ValidationError

from nurture.domain.journey import Effect, Measured, SalesAlert, Send, Transition
from nurture.domain.messages import Message, segment_message
from nurture.tools.engine import Engine


@dataclass(frozen=True)
class BadLine:
    number: int
    problem: str


def read_messages(lines: Iterable[str]) -> Iterator[Message | BadLine]:
    """Parse JSON Lines of Segment messages; a malformed line becomes a BadLine naming the problem."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield segment_message.validate_json(line)
        except ValidationError as error:
            yield BadLine(number, describe(error))


def describe(error: ValidationError) -> str:
    """A pydantic error as one line per field, e.g. `traits.email: must be an email address`."""
    problems = []
    for item in error.errors():
        if item["type"] == "json_invalid":
            return f"not valid JSON ({item['ctx'].get('error', 'parse error')})"
        loc = ".".join(str(part) for part in item["loc"] if part not in ("track", "page", "identify"))
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{loc or 'message'}: {message}")
    return "; ".join(problems)


def effect_record(effect: Effect, engine: Engine) -> dict[str, Any]:
    """One effect as the `--json` output line."""
    record: dict[str, Any] = {
        "kind": effect.kind,
        "lead": engine.name_of(effect.lead_id),
        "at": iso(effect.at),
    }
    if isinstance(effect, Transition):
        record |= {
            "from": effect.from_stage,
            "to": effect.to_stage,
            "reason": effect.reason,
            "programme": effect.programme,
        }
    elif isinstance(effect, Send):
        record |= {"sequence": effect.sequence, "content_id": effect.content_id, "step": effect.step}
    elif isinstance(effect, SalesAlert):
        record |= {
            "reason": effect.reason,
            "stage": effect.stage,
            "intent": effect.intent,
            "fit": effect.fit,
            "missing": list(effect.missing),
        }
        if effect.probable_automation:
            record["probable_automation"] = True
    return record


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def shown(effects: list[Effect]) -> list[Effect]:
    """The transitions, sends and alerts (what a timeline shows), not the counts kept for the monthly review."""
    return [e for e in effects if not isinstance(e, Measured)]


def print_json(engine: Engine, out: TextIO) -> None:
    for effect in sorted(shown(engine.effects), key=lambda e: e.at):
        out.write(json.dumps(effect_record(effect, engine)) + "\n")


def print_timelines(engine: Engine, until: datetime, out: TextIO) -> None:
    """Each lead's story: where it is now, then every transition, email and alert in time order."""
    by_lead: dict[str, list[Effect]] = {}
    for effect in shown(engine.effects):
        by_lead.setdefault(effect.lead_id, []).append(effect)
    programme = engine.programme
    for lead_id, lead in sorted(engine.leads.items(), key=lambda item: engine.name_of(item[0])):
        if lead.stage is None:
            continue
        intent = lead.intent(programme, until)
        out.write(
            f"\n{engine.name_of(lead_id)}  now {lead.stage.value}, intent {intent:.0f}"
            f"{'  (all emails of this sequence sent)' if lead.exhausted else ''}\n"
        )
        for effect in sorted(by_lead.get(lead_id, []), key=lambda e: e.at):
            out.write(f"  {effect.at:%Y-%m-%d %H:%M}  {line_for(effect)}\n")


def line_for(effect: Effect) -> str:
    if isinstance(effect, Transition):
        origin = effect.from_stage.value if effect.from_stage else "new"
        return f"{origin} -> {effect.to_stage.value}: {effect.reason}"
    if isinstance(effect, Send):
        return f"email  {effect.sequence.value} #{effect.step} {effect.content_id}"
    assert isinstance(effect, SalesAlert)
    missing = f"; still unknown: {', '.join(effect.missing)}" if effect.missing else ""
    return f"ALERT  sales: {effect.reason} (intent {effect.intent:.0f}, fit {effect.fit}{missing})"
