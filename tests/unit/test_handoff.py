"""The sales handoff: owners assigned once (rules, then in turn), alerts with values, each channel once."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest

from nurture.adapters.slack import slack_message
from nurture.domain.handoff import Alert, Qualification, choose_owner, sales_alert, top_signals
from nurture.domain.journey import SalesUpdate
from nurture.domain.messages import LeadTraits
from nurture.domain.programme import Programme, Stage
from nurture.pipeline.alerts import AlertNotDelivered, SalesHandoffService
from nurture.pipeline.ports import StoredLead
from tests.fakes import FakeIdempotency, FakeLeads
from tests.support import T0, Journey, days, identify, known_lead, page, starter, track

ADA: dict[str, Any] = {
    "first_name": "Ada",
    "last_name": "Lovelace",
    "company": "Analytical Engines",
    "company_size": 250,
    "seniority": "vp",
    "country": "GB",
    "problem": "Our reps call leads who are not ready",
    "budget_authority": True,
    "timeline": "this quarter",
}


@dataclass
class FakeOwners:
    owners: dict[str, str] = field(default_factory=dict)
    turns: int = 0

    def owner_of(self, lead_id: str) -> str | None:
        return self.owners.get(lead_id)

    def assign(self, lead_id: str, owner: str, at: datetime) -> str:
        return self.owners.setdefault(lead_id, owner)

    def next_turn(self) -> int:
        self.turns += 1
        return self.turns - 1


@dataclass
class FakeChannel:
    name: str
    failures: int = 0  # fail this many deliveries first
    delivered: list[Alert] = field(default_factory=list)

    def deliver(self, alert: Alert) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError(f"{self.name} is down")
        self.delivered.append(alert)


def _qualified_ada() -> tuple[StoredLead, Qualification]:
    journey = known_lead(**ADA)
    journey.apply(page("/pricing", at=T0))
    journey.apply(page("/pricing", at=T0 + days(1)))
    journey.apply(track("Demo Requested", at=T0 + days(1.1)))
    [alert] = journey.alerts
    qualification = Qualification(
        effect_id="alert-1",
        lead_id=alert.lead_id,
        reason=alert.reason,
        at=alert.at,
        stage=alert.stage,
        intent=alert.intent,
    )
    return StoredLead(lead=journey.lead, version=1, profiles=frozenset({"u#u-1"})), qualification


def _service(*channels: FakeChannel, owners: FakeOwners | None = None) -> tuple[SalesHandoffService, FakeLeads]:
    stored, _ = _qualified_ada()
    leads = FakeLeads(items={stored.lead.lead_id: stored})
    service = SalesHandoffService(
        leads, owners or FakeOwners(), list(channels), FakeIdempotency(), "https://api.example"
    )
    return service, leads


def test_a_rule_routes_a_lead_by_country_and_others_go_to_each_owner_in_turn() -> None:
    handoff = starter().sales_handoff
    owners = FakeOwners()

    def owner(**traits: Any) -> str | None:
        chosen = choose_owner(LeadTraits(**traits), handoff, owners.next_turn)
        return chosen.name if chosen else None

    assert owner(country="DE") == "Jonas Weber"
    assert owner(company_size=5000) == "Priya Shah"
    # Leads no rule matches take turns; the rule-routed ones above used no turn.
    assert [owner(country="GB") for _ in range(4)] == ["Sam Rivera", "Priya Shah", "Jonas Weber", "Sam Rivera"]


def test_no_owners_in_the_programme_leaves_the_lead_unassigned() -> None:
    handoff = starter().sales_handoff.model_copy(update={"owners": [], "rules": []})
    assert choose_owner(LeadTraits(country="GB"), handoff, lambda: 0) is None


def test_a_rule_naming_someone_who_is_not_an_owner_is_refused() -> None:
    data = starter().model_dump(exclude={"revision", "email_tags"})
    data["sales_handoff"]["rules"] = [{"owner": "Nobody", "countries": ["FR"]}]
    with pytest.raises(ValueError, match="Nobody is not one of the owners"):
        Programme.model_validate(data)


def test_the_alert_gives_sales_the_values_they_need_with_the_top_signals_and_their_dates() -> None:
    stored, qualification = _qualified_ada()
    alert = sales_alert(qualification, stored.lead, starter(), None, "https://crm.example/ada")

    assert (alert.name, alert.company, alert.company_size) == ("Ada Lovelace", "Analytical Engines", "250 employees")
    assert (alert.seniority, alert.budget_authority, alert.timeline) == ("VP", "yes", "this quarter")
    assert alert.problem == "Our reps call leads who are not ready"
    assert alert.fit_grade == "A"  # 20 (size) + 25 (VP) + 20 (budget authority) = 65
    assert alert.signals[0] == "Demo request 1\N{MULTIPLICATION SIGN} on 2026-01-06"
    assert alert.signals[1] == "Pricing page visit 2\N{MULTIPLICATION SIGN} in 2 days (2026-01-05 to 2026-01-06)"
    assert alert.missing == ()
    assert alert.owner == "unassigned"


def test_what_the_lead_has_not_told_us_reads_unknown() -> None:
    journey = known_lead()
    journey.apply(track("Demo Requested", at=T0))
    [raw] = journey.alerts
    qualification = Qualification(
        effect_id="e", lead_id=raw.lead_id, reason=raw.reason, at=raw.at, stage=raw.stage, intent=raw.intent
    )
    alert = sales_alert(qualification, journey.lead, starter(), None, "https://x.example/1")
    values = (alert.name, alert.company, alert.company_size, alert.seniority, alert.problem)
    assert values == ("unknown",) * 5
    assert (alert.budget_authority, alert.timeline) == ("unknown", "unknown")
    assert alert.fit_grade == "D"
    assert set(alert.missing) == {"company_size", "seniority", "problem", "budget_authority", "timeline"}


def test_top_signals_leave_out_rules_that_no_longer_add_anything() -> None:
    journey = known_lead()
    journey.apply(page("/blog/a", at=T0))
    assert [s.label for s in top_signals(journey.lead, starter(), T0)] == ["Blog post read"]
    assert top_signals(journey.lead, starter(), T0 + days(400)) == []


def test_the_slack_message_shows_every_value_and_cannot_be_made_to_mention_the_channel() -> None:
    stored, qualification = _qualified_ada()
    lead = stored.lead.model_copy(
        update={"traits": stored.lead.traits.model_copy(update={"problem": "<!channel> call me <https://evil|here>"})}
    )
    alert = sales_alert(qualification, lead, starter(), None, "https://crm.example/ada")

    message = slack_message(alert)
    text = str(message["blocks"])
    for value in ("Ada Lovelace (Analytical Engines)", "250 employees", "VP", "this quarter", "A (65)"):
        assert value in text
    assert "<!channel>" not in text
    assert "&lt;!channel&gt;" in text
    assert message["blocks"][-1]["elements"][0]["url"] == "https://crm.example/ada"


def test_an_owner_is_assigned_once_and_kept_by_a_retry_and_a_later_qualification() -> None:
    owners = FakeOwners()
    sns = FakeChannel("sns")
    service, _ = _service(sns, owners=owners)
    _, qualification = _qualified_ada()

    first = service.handle(qualification, starter())
    again = service.handle(qualification.model_copy(update={"effect_id": "alert-2"}), starter())

    assert first is not None
    assert again is not None
    assert first.owner == again.owner == "Sam Rivera"
    assert owners.turns == 1
    assert [a.effect_id for a in sns.delivered] == ["alert-1", "alert-2"]


def test_a_redelivered_qualification_alerts_no_channel_twice() -> None:
    sns, slack = FakeChannel("sns"), FakeChannel("slack")
    service, _ = _service(sns, slack)
    _, qualification = _qualified_ada()

    for _ in range(3):
        service.handle(qualification, starter())

    assert (len(sns.delivered), len(slack.delivered)) == (1, 1)


def test_a_channel_that_fails_is_tried_again_alone_and_the_others_are_not_repeated() -> None:
    sns, slack, bus = FakeChannel("sns"), FakeChannel("slack", failures=1), FakeChannel("bus")
    service, _ = _service(sns, slack, bus)
    _, qualification = _qualified_ada()

    with pytest.raises(AlertNotDelivered, match="slack"):
        service.handle(qualification, starter())
    service.handle(qualification, starter())  # the queue's retry

    assert (len(sns.delivered), len(slack.delivered), len(bus.delivered)) == (1, 1, 1)


def test_an_alert_for_an_erased_lead_goes_nowhere() -> None:
    sns = FakeChannel("sns")
    service, leads = _service(sns)
    _, qualification = _qualified_ada()
    leads.items.clear()

    assert service.handle(qualification, starter()) is None
    assert sns.delivered == []


# --- what the user trial found ------------------------------------------------------------------------------
def test_segment_reserved_traits_reach_the_alert_as_analytics_js_spells_them() -> None:
    assert LeadTraits.model_validate({"name": "Bo Berg", "employees": "300"}).model_dump(
        include={"first_name", "last_name", "company_size"}
    ) == {"first_name": "Bo", "last_name": "Berg", "company_size": 300}
    camel = LeadTraits.model_validate({"firstName": "Ada", "lastName": "Lovelace", "name": "ignored"})
    assert (camel.first_name, camel.last_name) == ("Ada", "Lovelace")
    assert LeadTraits.model_validate({"first_name": "Ada", "firstName": "Other"}).first_name == "Ada"


def test_a_new_lead_past_80_that_also_asks_for_a_demo_in_the_same_batch_alerts_once() -> None:
    # Given a visitor whose reading scores 80 before we know who they are, then an identify and a demo request,
    # all applied at one moment (one scorer batch)
    journey = Journey()
    journey.apply(page("/pricing", at=T0), now=T0)
    journey.apply(track("Case Study Downloaded", at=T0), now=T0)
    journey.apply(page("/product/a", at=T0), now=T0)
    journey.apply(page("/product/b", at=T0), now=T0)
    journey.apply(page("/product/c", at=T0), now=T0)
    journey.apply(page("/blog/a", at=T0), now=T0)
    journey.apply(identify(T0), now=T0)
    assert [a.reason for a in journey.alerts] == ["new lead, intent 80"]
    # When the demo request comes in the same batch
    journey.apply(track("Demo Requested", at=T0), now=T0)
    # Then sales hears of the lead once
    assert len(journey.alerts) == 1


def test_sales_giving_a_lead_back_resumes_nurture_where_its_intent_places_it() -> None:
    journey = known_lead()
    journey.apply(page("/pricing", at=T0))
    journey.apply(SalesUpdate(status="accepted"), now=T0 + days(1))
    assert journey.lead.stage is Stage.SALES_ENGAGED

    journey.apply(SalesUpdate(status="rejected", reason="no budget after all"), now=T0 + days(2))

    assert journey.lead.stage is Stage.AWARENESS
    assert journey.transitions[-1].reason == "sales update: rejected (no budget after all): back to nurture"
    assert [r.status for r in journey.lead.sales_history] == ["accepted", "rejected"]
    journey.run_until(T0 + days(20))
    assert journey.sends[-1].at > T0 + days(2)  # nurture email again


def test_a_demo_booked_event_is_kept_as_a_sales_status_for_the_monthly_review() -> None:
    journey = known_lead()
    journey.apply(track("Demo Booked", at=T0 + days(1)))
    assert journey.lead.stage is Stage.SALES_ENGAGED
    assert [(r.status, r.at) for r in journey.lead.sales_history] == [("demo_booked", T0 + days(1))]
