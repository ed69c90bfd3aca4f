"""Sending one nurture email: check the lead may still get it, render it, send it, record it.

The handler wraps `deliver` in powertools idempotency keyed on (lead, sequence, email), so a retried
or duplicated queue message never sends twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from nurture.domain.content import ContentError, render
from nurture.pipeline.content import CachedContent
from nurture.pipeline.ports import Ports, SendRequest, SentRecord
from nurture.runtime.observability import logger, metrics

SENDER = {"name": "The Northstar team", "company": "Northstar"}


class Delivery(BaseModel):
    outcome: Literal["sent", "skipped"]
    reason: str = ""
    provider_id: str = ""


def deliver(request: SendRequest, ports: Ports, content: CachedContent, now: datetime) -> Delivery:
    stored = ports.leads.get(request.lead_id)
    lead = stored.lead if stored else None
    if lead is None or lead.email is None:
        return _skipped("the lead no longer exists", request)
    if lead.stage is not request.sequence:
        # It opted out, was suppressed or moved on since the dispatcher queued this: never send stale email.
        return _skipped(f"the lead is now in {lead.stage}", request)
    try:
        rendered = render(content.email(request.content_id), lead.traits, SENDER)
    except (ContentError, FileNotFoundError) as error:
        metrics.add_metric(name="BrokenEmails", unit="Count", value=1)
        logger.error("email not sent: broken content", extra={"content_id": request.content_id, "error": str(error)})
        return _skipped("broken content", request)
    provider_id = ports.mailer.send(
        to=lead.email,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        tags={"sequence": request.sequence.value, "content_id": request.content_id},
    )
    ports.leads.record_send(
        SentRecord(
            lead_id=request.lead_id,
            sequence=request.sequence,
            content_id=request.content_id,
            subject=rendered.subject,
            sent_at=now,
            provider_id=provider_id,
        )
    )
    metrics.add_metric(name="EmailsSent", unit="Count", value=1)
    return Delivery(outcome="sent", provider_id=provider_id)


def _skipped(reason: str, request: SendRequest) -> Delivery:
    metrics.add_metric(name="SendsSkipped", unit="Count", value=1)
    logger.info("send skipped", extra={"lead_id": request.lead_id, "content_id": request.content_id, "reason": reason})
    return Delivery(outcome="skipped", reason=reason)
