"""Bounded leads: a lead's item stays under its budget however many events it gets, its score is what the
caps and daily limit allow, a flood is flagged as probable automation, and dedupe stays exact.

docs/reliability.md, "Bounded leads".
"""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from nurture import constants as c
from nurture.adapters.dynamodb import LeadTable, item_bytes
from nurture.domain.journey import Lead
from nurture.domain.programme import Stage, load_programme
from nurture.domain.scoring import contributions, intent_score, tally
from nurture.pipeline.ports import StoredLead
from tests.support import T0, Journey, days, identify, known_lead, page, starter_yaml, track

SECOND = timedelta(seconds=1)


def item_size(lead: Lead) -> int:
    """The bytes of the lead's state item exactly as the DynamoDB adapter writes it."""
    table = LeadTable(client=None, table="leads")
    return item_bytes(table._item(StoredLead(lead=lead, version=1, profiles=frozenset({"u-1"}))))


def test_a_flood_of_page_views_keeps_the_lead_small_scored_per_the_daily_limit_and_flagged() -> None:
    # Given a known lead, when a bot requests the pricing page 5,000 times in one morning
    journey = known_lead()
    for i in range(5_000):
        journey.apply(page("/pricing", T0 + i * SECOND), now=T0 + i * SECOND)
    lead = journey.lead
    # Then the item stays a few KB (each rule's day stops counting at its limit, and only messages that changed
    # the score are remembered), the score is 20 visits' worth (the daily limit), and the lead is flagged
    assert item_size(lead) < 4096 < c.LEAD_ITEM_BUDGET_BYTES
    assert lead.intent(journey.programme, T0 + days(0.5)) == 20 * 30
    assert lead.automation_flagged_at == T0 + 499 * SECOND  # its 501st message that day, with the identify
    assert lead.stage is Stage.DECISION
    [alert] = journey.alerts  # entering Decision alerts once, not once per page view
    assert alert.probable_automation is False  # it reached Decision before the flood looked like a bot
    # And an opt-out after the flood is applied at once
    journey.apply(track("Unsubscribed", T0 + 5_001 * SECOND), now=T0 + 5_001 * SECOND)
    assert journey.lead.stage is Stage.OPTED_OUT


def test_a_thousand_demo_requests_in_a_day_raise_one_alert_marked_as_probable_automation() -> None:
    journey = known_lead()
    for i in range(1_000):
        journey.apply(track("Demo Requested", T0 + i * SECOND), now=T0 + i * SECOND)
    assert len(journey.alerts) == 1
    # the next day's request is news again; by then the lead is flagged, and the alert says so
    journey.apply(track("Demo Requested", T0 + days(1)))
    assert len(journey.alerts) == 2
    assert journey.alerts[-1].probable_automation is True


def test_a_year_of_daily_activity_on_every_rule_stays_under_the_budget() -> None:
    journey = known_lead(company_size=240, seniority="director")
    for d in range(400):
        at = T0 + days(d)
        for message in (
            page("/pricing", at),
            track("Case Study Downloaded", at),
            page("/blog/a", at),
            page("/product/a", at),
            track("Email Opened", at),
        ):
            journey.apply(message, now=at)
    lead = journey.lead
    assert item_size(lead) < c.LEAD_ITEM_BUDGET_BYTES
    # days beyond `forget_after_days` were folded away
    assert lead.tallies.total_days <= 5 * (journey.programme.intent.forget_after_days + 1)
    assert lead.tallies.forgotten == {"third_product_page_visit": 3}


def test_a_redelivered_message_never_counts_twice_even_after_a_thousand_others() -> None:
    journey = known_lead()
    pricing = page("/pricing", T0 + SECOND)
    journey.apply(pricing, now=T0 + SECOND)
    for i in range(1_000):  # far more than the recent-message ring holds
        journey.apply(page(f"/about/{i}", T0 + (2 + i) * SECOND), now=T0 + (2 + i) * SECOND)
    # the stream redelivers the pricing visit a day later
    journey.apply(pricing, now=T0 + days(1))
    assert journey.lead.intent(journey.programme, T0 + days(1)) == 30


def test_a_lead_merged_from_an_anonymous_visitor_keeps_both_tallies() -> None:
    journey = Journey()
    journey.apply(page("/pricing", T0, user=None, anonymous="a-1"))
    journey.apply(page("/pricing", T0 + days(1), user=None, anonymous="a-1"))
    journey.apply(identify(T0 + days(1), user=None, anonymous="a-1"))
    assert journey.lead.intent(journey.programme, T0 + days(1)) == 60


_PATHS = ["/pricing", "/blog/a", "/product/a", "/about"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(_PATHS), st.integers(0, 900), st.integers(0, 86_399)), max_size=40),
    st.integers(0, 900),
)
def test_compacting_a_lead_never_changes_its_score(visits, looked_at) -> None:
    # Given a programme with a capped rule and an `nth` rule, and visits spread over two and a half years
    programme = load_programme(
        starter_yaml().replace("      points: 5\n", "      points: 5\n      cap: {points: 10, per_days: 7}\n")
    )
    messages = sorted(
        (page(path, T0 + days(day) + timedelta(seconds=second)) for path, day, second in visits),
        key=lambda m: m.timestamp,
    )
    # When a lead receives them as they happen (folding old days away as it goes)
    journey = known_lead()
    journey.programme = programme
    for message in messages:
        journey.apply(message, now=message.timestamp)
    end = max([T0, *(m.timestamp for m in messages)]) + days(looked_at)
    journey.run_until(end)
    # Then its score and the explanation are those of every visit tallied at once, never folded
    everything = tally(messages, programme)
    assert journey.lead.intent(programme, end) == intent_score(everything, programme, end)
    assert contributions(journey.lead.tallies, programme, end) == contributions(everything, programme, end)
