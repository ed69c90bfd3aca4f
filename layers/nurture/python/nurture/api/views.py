"""What the API answers: the ingest result and the lead as sales and marketing see it."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from nurture.domain.journey import SentEmail, StageChange
from nurture.domain.messages import LeadTraits
from nurture.domain.programme import Programme, Stage
from nurture.domain.scoring import Contribution, contributions, fit_score
from nurture.pipeline.ingest import Problem
from nurture.pipeline.ports import StoredLead


class IngestResult(BaseModel):
    success: bool
    accepted: int = Field(description="Messages stored by this request or already stored before (duplicates)")
    duplicates: int = Field(description="Messages whose messageId was already stored: counted once")
    errors: list[Problem] = Field(default_factory=list)


class LeadView(BaseModel):
    """What sales and marketing see of a lead: where it is, why, and what we know."""

    lead_id: str
    email: str | None
    stage: Stage | None
    stage_entered_at: datetime | None
    intent: float
    intent_explained: list[Contribution] = Field(description="Contributing events, most important first")
    fit: int
    fit_explained: list[tuple[str, int]]
    excluded_because: str | None
    traits: LeadTraits
    transitions: list[StageChange]
    sends: list[SentEmail]
    next_action_at: datetime | None
    exhausted: bool = Field(
        description="Every email of the lead's sequence has been sent: it waits on new content (add emails)"
    )


def lead_view(stored: StoredLead, programme: Programme, now: datetime) -> LeadView:
    lead = stored.lead
    fit = fit_score(lead.traits, programme)
    explained = contributions(lead.signals, programme, now)
    return LeadView(
        lead_id=lead.lead_id,
        email=lead.email,
        stage=lead.stage,
        stage_entered_at=lead.stage_entered_at,
        intent=round(lead.intent(programme, now), 1),
        intent_explained=explained,
        fit=fit.score,
        fit_explained=list(fit.reasons),
        excluded_because=fit.excluded_because,
        traits=lead.traits,
        transitions=list(lead.history),
        sends=list(lead.sent),
        next_action_at=lead.next_action_at(programme),
        exhausted=lead.exhausted,
    )
