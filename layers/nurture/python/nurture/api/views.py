"""What the API answers: the ingest result and the lead as sales and marketing see it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from nurture.domain.journey import SalesRecord, SentEmail, StageChange
from nurture.domain.messages import LeadTraits
from nurture.domain.programme import Programme, Stage
from nurture.domain.scoring import Contribution, contributions, fit_score
from nurture.pipeline.ingest import Problem
from nurture.pipeline.ports import SentRecord, StoredLead


class IngestResult(BaseModel):
    success: bool
    accepted: int = Field(description="Messages stored by this request or already stored before (duplicates)")
    duplicates: int = Field(description="Messages whose messageId was already stored: counted once")
    errors: list[Problem] = Field(default_factory=list)


class SendView(SentEmail):
    """An email decided for the lead (`at`: when the dispatcher decided it) and what became of it."""

    delivery: Literal["sent", "unconfirmed", "not_sent"] = Field(
        description="`sent`: SES accepted it (`provider_id` is its message id). `unconfirmed`: SES's answer was "
        "lost after the email may have gone out: it may or may not have been sent, and it will not be sent again. "
        "`not_sent`: no send record: still queued, skipped by the sender (the lead moved on or the email did not "
        "render), or lost in a crash mid-send (never retried). Rarely, SES accepted it but its record could not be "
        "written (counted as `SendRecordsLost`)."
    )
    sent_at: datetime | None = Field(
        default=None, description="When the sender handed it to SES (`sent` and `unconfirmed` only)"
    )
    provider_id: str | None = Field(default=None, description="SES's message id (`sent` only)")
    variant: int | None = Field(
        default=None,
        description="Which subject line of an A/B test the lead got, 0 for the first (`sent` and `unconfirmed`)",
    )


def send_views(sent: Iterable[SentEmail], records: Iterable[SentRecord]) -> list[SendView]:
    """Each decided email with its send record, if the sender wrote one (matched on sequence and email)."""
    by_key = {(r.sequence, r.content_id): r for r in records}
    views = []
    for email in sent:
        record = by_key.get((email.sequence, email.content_id))
        if record is None:
            view = SendView(**email.model_dump(), delivery="not_sent")
        elif record.provider_id:
            view = SendView(
                **email.model_dump(),
                delivery="sent",
                sent_at=record.sent_at,
                provider_id=record.provider_id,
                variant=record.variant,
            )
        else:
            view = SendView(
                **email.model_dump(), delivery="unconfirmed", sent_at=record.sent_at, variant=record.variant
            )
        views.append(view)
    return views


class LeadView(BaseModel):
    """What sales and marketing see of a lead: where it is, why, and what we know."""

    lead_id: str
    email: str | None
    stage: Stage | None
    stage_entered_at: datetime | None
    intent: float
    intent_explained: list[Contribution] = Field(
        description="What adds to the intent score, one entry per rule and day, most important first"
    )
    probable_automation: bool = Field(
        description="The lead sent more events in one day than a person would (`intent.automation_events_per_day`)"
    )
    fit: int
    fit_explained: list[tuple[str, int]]
    excluded_because: str | None
    traits: LeadTraits
    transitions: list[StageChange]
    sends: list[SendView] = Field(description="Every email decided for the lead, oldest first, with its delivery")
    next_action_at: datetime | None
    exhausted: bool = Field(
        description="Every email of the lead's sequence has been sent: it waits on new content (add emails)"
    )
    sales_status: str | None = Field(description="The latest status sales gave the lead, if any")
    sales_history: list[SalesRecord] = Field(description="Every status sales gave, with when, oldest first")
    owner: str | None = Field(default=None, description="The sales rep who owns the lead, once it was qualified")
    skipped: list[str] = Field(
        description="Emails that did not render for this lead (broken content): not sent, never tried again"
    )


def lead_view(
    stored: StoredLead,
    programme: Programme,
    now: datetime,
    records: Iterable[SentRecord],
    owner: str | None = None,
) -> LeadView:
    """The lead as an admin sees it; `records` (`LeadStore.send_records`) tell each send's delivery."""
    lead = stored.lead
    fit = fit_score(lead.traits, programme)
    explained = contributions(lead.tallies, programme, now)
    return LeadView(
        lead_id=lead.lead_id,
        email=lead.email,
        stage=lead.stage,
        stage_entered_at=lead.stage_entered_at,
        intent=round(lead.intent(programme, now), 1),
        intent_explained=explained,
        probable_automation=lead.automation_flagged_at is not None,
        fit=fit.score,
        fit_explained=list(fit.reasons),
        excluded_because=fit.excluded_because,
        traits=lead.traits,
        transitions=list(lead.history),
        sends=send_views(lead.sent, records),
        next_action_at=lead.next_action_at(programme),
        exhausted=lead.exhausted,
        skipped=list(lead.skipped),
        sales_status=lead.sales_status,
        sales_history=list(lead.sales_history),
        owner=owner,
    )
