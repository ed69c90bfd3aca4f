"""The event bus port on EventBridge: stage changes and sales alerts, without personal data."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from nurture.constants import EVENT_SOURCE, SALES_ALERT_DETAIL_TYPE, STAGE_CHANGED_DETAIL_TYPE
from nurture.domain.journey import Effect, SalesAlert, Transition
from nurture.pipeline.ports import effect_id


def effect_detail(effect: Effect) -> tuple[str, dict[str, Any]]:
    """The bus event for an effect. No personal data: consumers read the lead by id. `effect_id` is the same
    for every publication of one occurrence: a consumer that must act once can deduplicate on it."""
    if isinstance(effect, Transition):
        return STAGE_CHANGED_DETAIL_TYPE, {
            "effect_id": effect_id(effect),
            "lead_id": effect.lead_id,
            "from": effect.from_stage,
            "to": effect.to_stage,
            "reason": effect.reason,
            "at": effect.at.isoformat(),
            "programme": effect.programme,
        }
    if isinstance(effect, SalesAlert):
        return SALES_ALERT_DETAIL_TYPE, {
            "effect_id": effect_id(effect),
            "lead_id": effect.lead_id,
            "reason": effect.reason,
            "at": effect.at.isoformat(),
            "stage": effect.stage,
            "intent": effect.intent,
            "fit": effect.fit,
            "missing": list(effect.missing),
            "probable_automation": effect.probable_automation,
        }
    raise TypeError(f"{effect.kind} effects go to the send queue, not the bus")


class EventBridgeBus:
    def __init__(self, client: Any, bus_name: str) -> None:
        self.client = client
        self.bus_name = bus_name

    def publish(self, effects: Sequence[Effect]) -> None:
        entries = []
        for effect in effects:
            detail_type, detail = effect_detail(effect)
            entries.append(
                {
                    "Source": EVENT_SOURCE,
                    "DetailType": detail_type,
                    "Detail": json.dumps(detail),
                    "EventBusName": self.bus_name,
                }
            )
        for start in range(0, len(entries), 10):
            answer = self.client.put_events(Entries=entries[start : start + 10])
            if answer.get("FailedEntryCount"):
                raise RuntimeError(f"EventBridge rejected {answer['FailedEntryCount']} events")
