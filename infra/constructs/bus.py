"""The custom EventBridge bus that lead stage changes and sales alerts are announced on."""

from __future__ import annotations

from aws_cdk import aws_events as events
from constructs import Construct

from nurture import constants as c


class Bus(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.event_bus = events.EventBus(
            self,
            "Bus",
            event_bus_name=c.EVENT_BUS,
            description=f"nurture: {c.STAGE_CHANGED_DETAIL_TYPE} and sales alerts, from {c.EVENT_SOURCE}",
        )
