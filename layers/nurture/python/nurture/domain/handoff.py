"""The sales handoff: who owns a qualified lead, and what the alert tells sales (values, not gaps).

Pure: the alerts use case (`nurture.pipeline.alerts`) reads the lead, asks `choose_owner` and `sales_alert`,
and hands the result to SNS, Slack and the bus.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from nurture.domain.journey import SALES_FIELDS, Lead
from nurture.domain.messages import LeadTraits
from nurture.domain.programme import Owner, Programme, SalesHandoff, Stage
from nurture.domain.scoring import contributions, fit_score

UNKNOWN = "unknown"
SIGNALS_SHOWN = 3
TIMES = "\N{MULTIPLICATION SIGN}"
SENIORITY_WORDS = {
    "ic": "individual contributor",
    "manager": "manager",
    "director": "director",
    "vp": "VP",
    "c_level": "C-level",
}


class Signal(BaseModel):
    """One intent rule's part in the score, as a rep reads it: what, how often, when."""

    model_config = ConfigDict(frozen=True)

    label: str
    count: int = Field(description="Matching messages (each day counted up to the rule's daily limit)")
    first_day: date
    last_day: date
    points: float = Field(description="What these messages add to the intent score now (after decay)")

    @property
    def text(self) -> str:
        """`Pricing page 3x in 2 days (2026-11-18 to 2026-11-19)`, or `... 1x on 2026-11-19` (with a times sign)."""
        times = f"{self.label} {self.count}{TIMES}"
        first, last = self.first_day.isoformat(), self.last_day.isoformat()
        if first == last:
            return f"{times} on {last}"
        return f"{times} in {(self.last_day - self.first_day).days + 1} days ({first} to {last})"


class Qualification(BaseModel):
    """A `Sales Alert` event from the bus (no personal data): which lead qualified, when and why."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    effect_id: str = Field(min_length=1, max_length=200)
    lead_id: str = Field(min_length=1, max_length=64)
    reason: str = Field(max_length=500)
    at: datetime
    stage: Stage
    intent: float
    probable_automation: bool = False


class Alert(BaseModel):
    """A sales alert as sales gets it (SNS, Slack, `GET /_local/alerts`): each value sales needs, or "unknown"."""

    model_config = ConfigDict(frozen=True)

    effect_id: str = Field(description="The same for every delivery of one qualification: deduplicate on it")
    lead_id: str
    reason: str
    at: datetime
    stage: Stage
    intent: float
    fit: int
    fit_grade: str = Field(description="A, B, C or D (the programme's `fit.grades`)")
    probable_automation: bool
    missing: tuple[str, ...] = Field(description="What sales needs that the lead has not told us yet")
    name: str
    email: str
    company: str
    company_size: str
    seniority: str
    problem: str
    budget_authority: str
    timeline: str
    signals: tuple[str, ...] = Field(description="The top intent signals with their dates, strongest first")
    owner: str = Field(description="The rep who owns the lead, or unassigned")
    owner_email: str | None = None
    owner_slack: str | None = None
    link: str


def top_signals(lead: Lead, programme: Programme, now: datetime, limit: int = SIGNALS_SHOWN) -> list[Signal]:
    """The rules that add most to the lead's intent score now, each with how often and over which days."""
    by_rule: dict[str, list[tuple[str, int, date, float]]] = {}
    for part in contributions(lead.tallies, programme, now):
        if part.value > 0:
            by_rule.setdefault(part.rule, []).append((part.label, part.count, part.day, part.value))
    signals = [
        Signal(
            label=parts[0][0],
            count=sum(count for _, count, _, _ in parts),
            first_day=min(day for _, _, day, _ in parts),
            last_day=max(day for _, _, day, _ in parts),
            points=round(sum(value for *_, value in parts), 1),
        )
        for parts in by_rule.values()
    ]
    signals.sort(key=lambda s: (-s.points, s.label))
    return signals[:limit]


def choose_owner(traits: LeadTraits, handoff: SalesHandoff, next_turn: Callable[[], int]) -> Owner | None:
    """The owner for a lead: the first routing rule that matches its country and company size, else the next
    owner in turn (`next_turn` is asked only then, so rule-routed leads do not use up a turn). None: no owners."""
    owners = {owner.name: owner for owner in handoff.owners}
    for rule in handoff.rules:
        if rule.countries and traits.country not in rule.countries:
            continue
        size = traits.company_size
        if rule.min_company_size is not None and (size is None or size < rule.min_company_size):
            continue
        if rule.max_company_size is not None and (size is None or size > rule.max_company_size):
            continue
        return owners[rule.owner]
    if not handoff.owners:
        return None
    return handoff.owners[next_turn() % len(handoff.owners)]


def lead_link(programme: Programme, public_url: str, lead_id: str) -> str:
    """Where the alert's link points: the programme's `lead_link` (a CRM), else the admin API's lead view."""
    template = programme.sales_handoff.lead_link
    if template is not None:
        return template.replace("{lead_id}", lead_id)
    return f"{public_url.rstrip('/')}/v1/leads/{lead_id}"


def sales_alert(alert: Qualification, lead: Lead, programme: Programme, owner: Owner | None, link: str) -> Alert:
    """What sales gets for a qualification: the lead's values as we know them now, the top signals as of the
    alert, its fit grade and its owner."""
    traits = lead.traits
    fit = fit_score(traits, programme).score
    name = " ".join(part for part in (traits.first_name, traits.last_name) if part)
    size = traits.company_size
    budget = traits.budget_authority
    return Alert(
        effect_id=alert.effect_id,
        lead_id=alert.lead_id,
        reason=alert.reason,
        at=alert.at,
        stage=alert.stage,
        intent=alert.intent,
        fit=fit,
        fit_grade=programme.fit.grade(fit),
        probable_automation=alert.probable_automation,
        missing=tuple(field for field in SALES_FIELDS if getattr(traits, field) is None),
        name=name or UNKNOWN,
        email=traits.email or UNKNOWN,
        company=traits.company or UNKNOWN,
        company_size=f"{size:,} employees" if size is not None else UNKNOWN,
        seniority=SENIORITY_WORDS.get(traits.seniority, traits.seniority) if traits.seniority else UNKNOWN,
        problem=traits.problem or UNKNOWN,
        budget_authority=UNKNOWN if budget is None else ("yes" if budget else "no"),
        timeline=traits.timeline or UNKNOWN,
        signals=tuple(signal.text for signal in top_signals(lead, programme, alert.at)),
        owner=owner.name if owner else "unassigned",
        owner_email=owner.email if owner else None,
        owner_slack=owner.slack if owner else None,
        link=link,
    )


def alert_text(alert: Alert) -> str:
    """The alert as plain text: what an email subscriber of the sales topic reads."""
    lines = [
        f"{alert.name} at {alert.company}: {alert.reason}",
        "",
        f"Stage: {alert.stage.value} · intent {alert.intent:g} · fit {alert.fit_grade} ({alert.fit})",
        f"Owner: {alert.owner}" + (f" <{alert.owner_email}>" if alert.owner_email else ""),
        "",
        f"Email: {alert.email}",
        f"Company size: {alert.company_size}",
        f"Role seniority: {alert.seniority}",
        f"Problem: {alert.problem}",
        f"Budget authority: {alert.budget_authority}",
        f"Timeline: {alert.timeline}",
        "",
        "Top intent signals:",
        *(f"- {signal}" for signal in alert.signals or ("none yet",)),
    ]
    if alert.probable_automation:
        lines += ["", "Check before calling: this lead sent more events in a day than a person would."]
    lines += ["", f"Lead: {alert.link}"]
    return "\n".join(lines)
