"""Intent and fit scoring: the seeds' weights, nth occurrences, caps, decay and the reasons behind a score."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nurture.domain.messages import LeadTraits
from nurture.domain.programme import load_programme
from nurture.domain.scoring import Tallies, below_since, contributions, fit_score, intent_score, matching_rules, tally
from tests.support import T0, days, page, starter, starter_yaml, track


def _signals(*messages) -> Tallies:
    return tally(messages, starter())


@pytest.mark.parametrize(
    ("message", "points"),
    [
        (page("/pricing"), 30),
        (page("/pricing/enterprise"), 30),
        (page("/Pricing/"), 30),
        (track("Case Study Downloaded"), 20),
        (page("/blog/why-drips-stall"), 5),
        (track("Demo Requested"), 100),
        (track("Email Opened"), 1),
        (page("/about"), 0),
        (page("/pricing-history"), 0),
        (track("Newsletter Signup"), 0),
    ],
)
def test_each_signal_scores_its_seed_weight(message, points: int) -> None:
    assert intent_score(_signals(message), starter(), T0) == points


def test_only_the_third_product_page_visit_scores_25() -> None:
    visits = [page(f"/products/p{i}", T0 + days(i)) for i in range(4)]
    at = T0 + days(3)  # no decay yet for the third one
    assert intent_score(_signals(*visits[:2]), starter(), at) == 0
    assert intent_score(_signals(*visits[:3]), starter(), T0 + days(2)) == 25
    assert [c.rule for c in contributions(_signals(*visits), starter(), T0 + days(2))] == ["third_product_page_visit"]
    assert contributions(_signals(*visits), starter(), at)[0].day == visits[2].timestamp.date()


def test_the_third_product_page_is_found_by_time_not_arrival_order() -> None:
    visits = [page(f"/product/p{i}", T0 + days(i)) for i in range(3)]
    arrived = _signals(visits[2], visits[0], visits[1])
    assert contributions(arrived, starter(), T0)[0].day == visits[2].timestamp.date()


def test_an_event_loses_half_its_weight_after_one_half_life() -> None:
    signals = _signals(page("/pricing", T0))
    assert intent_score(signals, starter(), T0 + days(90)) == pytest.approx(15)


def test_an_event_six_months_old_weighs_less_than_one_from_last_week() -> None:
    old = _signals(track("Case Study Downloaded", T0))
    recent = _signals(track("Case Study Downloaded", T0 + days(175)))
    now = T0 + days(182)
    assert intent_score(old, starter(), now) < intent_score(recent, starter(), now)
    assert pytest.approx(4.92, abs=0.01) == 20 * 0.5 ** (182 / 90)
    assert intent_score(old, starter(), now) == 5  # in whole points, as shown


def test_a_cap_limits_points_per_window() -> None:
    programme = load_programme(
        starter_yaml().replace("      points: 5\n", "      points: 5\n      cap: {points: 10, per_days: 7}\n")
    )
    reads = [page(f"/blog/post-{i}", T0 + days(i * 0.1)) for i in range(5)]
    assert intent_score(tally(reads, programme), programme, T0 + days(0.5)) == 10
    # the window is 7 whole days (UTC): on the eighth day it has room again
    later = page("/blog/next-week", T0 + days(7))
    assert sum(c.points for c in contributions(tally([*reads, later], programme), programme, T0 + days(8))) == 15
    sooner = page("/blog/same-week", T0 + days(6))
    assert sum(c.points for c in contributions(tally([*reads, sooner], programme), programme, T0 + days(8))) == 10


def test_a_property_filter_must_match_for_the_rule_to_score() -> None:
    programme = load_programme(
        starter_yaml().replace(
            "when: {type: track, event: Case Study Downloaded}",
            "when: {type: track, event: Case Study Downloaded, properties: {industry: fintech}}",
        )
    )
    assert matching_rules(track("Case Study Downloaded", industry="fintech"), programme) == ("case_study_download",)
    assert matching_rules(track("Case Study Downloaded", industry="retail"), programme) == ()


def test_the_explanation_lists_the_largest_contribution_first() -> None:
    signals = _signals(page("/blog/a", T0), track("Demo Requested", T0), page("/pricing", T0))
    explained = contributions(signals, starter(), T0)
    assert [c.label for c in explained] == ["Demo request", "Pricing page visit", "Blog post read"]
    assert sum(c.value for c in explained) == intent_score(signals, starter(), T0) == 135


def test_a_page_path_is_taken_from_the_url_when_no_path_is_given() -> None:
    message = page("/ignored")
    from_url = message.model_copy(update={"properties": {"url": "https://example.com/pricing?plan=team"}})
    assert from_url.path == "/pricing"


@pytest.mark.parametrize(
    ("traits", "score"),
    [
        ({"company_size": 20}, 5),
        ({"company_size": 240}, 20),
        ({"company_size": 5000}, 25),
        ({"seniority": "vp"}, 25),
        ({"seniority": "ic"}, 0),
        ({"industry": "Software"}, 15),
        ({"budget_authority": True}, 20),
        ({"email": "ada@gmail.com"}, -20),
        ({"email": "ada@northwind.example", "company_size": 240, "seniority": "director"}, 40),
    ],
)
def test_fit_scores_company_role_industry_and_budget(traits: dict[str, Any], score: int) -> None:
    assert fit_score(LeadTraits(**traits), starter()).score == score


def test_fit_explains_each_point() -> None:
    result = fit_score(LeadTraits(company_size=240, seniority="vp", email="bo@gmail.com"), starter())
    assert dict(result.reasons) == {
        "company size 240": 20,
        "seniority vp": 25,
        "personal email domain gmail.com": -20,
    }


@pytest.mark.parametrize(
    ("traits", "reason"),
    [
        ({"email": "dee@rivalnurture.example"}, "competitor domain rivalnurture.example"),
        ({"email": "kim@example.com", "country": "kp"}, "excluded country KP"),
    ],
)
def test_competitors_and_excluded_countries_are_excluded_with_the_reason(traits: dict[str, Any], reason: str) -> None:
    assert fit_score(LeadTraits(**traits), starter()).excluded_because == reason


def test_a_b2b_lead_from_an_allowed_country_is_not_excluded() -> None:
    assert fit_score(LeadTraits(email="ada@northwind.example", country="GB"), starter()).excluded_because is None


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["/pricing", "/blog/a", "/about/x"]), st.floats(0, 60)),
        max_size=6,
    ),
    st.floats(0, 60),
)
def test_below_since_finds_when_the_score_last_fell_below_the_threshold_to_stay(visits, since_day) -> None:
    # Given any visits and a moment to look from, checked against `since` and every midnight for 400 days (a day's
    # visits count from the start of their day)
    messages = [page(path, T0 + days(day)) for path, day in visits]
    signals = _signals(*messages)
    since = T0 + days(since_day)
    moments = sorted(
        {since} | {datetime.combine(since.date() + timedelta(days=k), datetime.min.time(), UTC) for k in range(1, 400)}
    )
    below = [
        intent_score(_signals(*(m for m in messages if m.timestamp.date() <= t.date())), starter(), t) < 40
        for t in moments
    ]
    assert below[-1]
    last_spell = len(below) - 1
    while last_spell > 0 and below[last_spell - 1]:
        last_spell -= 1
    assert below_since(signals, starter(), 40, since) == moments[last_spell]
