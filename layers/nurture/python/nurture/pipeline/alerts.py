"""Alerting sales: from a `Sales Alert` on the bus to an owner, then SNS, Slack and a `Lead Qualified` bus event.

The alerts function calls `SalesHandoffService.handle` for each qualification. The owner is assigned once (a
conditional write: a retry or a later qualification keeps it). Each channel delivers each qualification once:
powertools idempotency keyed on the alert's effect id, one record per channel, so a redelivered bus event, or a
retry after one channel failed, never repeats the channels that worked. Never a storm.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, Protocol

from aws_lambda_powertools.utilities.idempotency import BasePersistenceLayer, IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.typing import LambdaContext

from nurture.domain.handoff import Alert, Qualification, choose_owner, lead_link, sales_alert
from nurture.domain.messages import LeadTraits
from nurture.domain.programme import Owner, Programme
from nurture.pipeline.ports import LeadStore, OwnerStore
from nurture.runtime.observability import Metric, count, logger

# How long a channel remembers it delivered a qualification: longer than any redelivery (the outbox's lease,
# SQS's retries and retention), so a duplicate never alerts twice.
DELIVERED_FOR_SECONDS = 14 * 24 * 3600
KEY_PREFIX = "alert"


class AlertChannel(Protocol):
    """Where sales hears of a qualified lead (the sales topic, Slack, the bus for CRM connectors)."""

    name: str

    def deliver(self, alert: Alert) -> None:
        """Deliver the alert, or raise: the alert is tried again later, and this channel only."""


class AlertNotDelivered(Exception):
    """One or more channels failed; the others delivered and will not deliver again."""


class SalesHandoffService:
    def __init__(
        self,
        leads: LeadStore,
        owners: OwnerStore,
        channels: Sequence[AlertChannel],
        persistence: BasePersistenceLayer | None,
        public_url: str,
    ) -> None:
        self.leads = leads
        self.owners = owners
        self.public_url = public_url
        self._configs: list[IdempotencyConfig] = []
        self._channels: list[tuple[str, Any]] = []
        for channel in channels:
            self._channels.append((channel.name, self._once(channel, persistence)))

    def _once(self, channel: AlertChannel, persistence: BasePersistenceLayer | None) -> Any:
        """`channel.deliver`, at most once per effect id when there is a persistence layer (always, deployed)."""

        def deliver(alert: Alert) -> dict[str, str]:
            channel.deliver(alert)
            return {"delivered": channel.name}

        if persistence is None:
            return deliver
        # powertools configures a persistence layer for the first function that uses it: one copy per channel.
        config = IdempotencyConfig(event_key_jmespath="effect_id", expires_after_seconds=DELIVERED_FOR_SECONDS)
        self._configs.append(config)
        return idempotent_function(
            deliver,
            data_keyword_argument="alert",
            persistence_store=copy.copy(persistence),
            config=config,
            key_prefix=f"{KEY_PREFIX}-{channel.name}",
        )

    def register(self, context: LambdaContext) -> None:
        """A delivery interrupted by a timeout may be tried again once the invocation's time is up."""
        for config in self._configs:
            config.register_lambda_context(context)

    def handle(self, qualification: Qualification, programme: Programme) -> Alert | None:
        """Assign the owner and alert every channel. None when the lead no longer exists (erased)."""
        stored = self.leads.get(qualification.lead_id)
        if stored is None:
            logger.info("sales alert dropped: the lead no longer exists", extra={"lead_id": qualification.lead_id})
            return None
        owner = self._owner(qualification, stored.lead.traits, programme)
        link = lead_link(programme, self.public_url, qualification.lead_id)
        alert = sales_alert(qualification, stored.lead, programme, owner, link)
        failed = []
        for name, deliver_once in self._channels:
            try:
                deliver_once(alert=alert)
            except Exception as error:  # the other channels still deliver; this one is tried again
                logger.exception("sales alert not delivered", extra={"channel": name, "lead_id": alert.lead_id})
                failed.append(f"{name}: {type(error).__name__}: {error}")
        if failed:
            raise AlertNotDelivered("; ".join(failed))
        count(Metric.SALES_ALERTS_DELIVERED)
        return alert

    def _owner(self, qualification: Qualification, traits: LeadTraits, programme: Programme) -> Owner | None:
        handoff = programme.sales_handoff
        known = {owner.name: owner for owner in handoff.owners}
        name = self.owners.owner_of(qualification.lead_id)
        if name is None:
            chosen = choose_owner(traits, handoff, self.owners.next_turn)
            if chosen is None:
                return None
            name = self.owners.assign(qualification.lead_id, chosen.name, qualification.at)
            count(Metric.OWNERS_ASSIGNED)
        # An owner since removed from the programme still owns the lead: sales reassigns in the CRM.
        return known.get(name) or Owner(name=name)
