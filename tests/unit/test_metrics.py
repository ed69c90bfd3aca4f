"""The monthly review's figures (docs/metrics.md), on small hand-made histories with known answers."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime
from statistics import NormalDist
from typing import Any

import pytest

from nurture.domain.journey import Measured, SalesUpdate
from nurture.domain.messages import TrackMessage
from nurture.domain.metrics import month_of
from nurture.tools.report.figures import ab_result, monthly_report, percentile
from tests.support import T0, Journey, days, identify, page, starter, track


def _counted(journey: Journey) -> dict[str, dict[str, float]]:
    months: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for effect in journey.effects:
        if isinstance(effect, Measured):
            for month, name, amount in effect.counts:
                months[month][name] += amount
    return {month: dict(counters) for month, counters in months.items()}


def _opened(content: str, at: datetime, message_id: str, **extra: Any) -> TrackMessage:
    return track(
        "Email Opened", at, message_id=message_id, content_id=content, sequence="awareness", variant=0, **extra
    )


# --- counted as it happens -------------------------------------------------------------------------------------
def test_a_buyers_journey_is_counted_where_the_review_looks_for_it() -> None:
    # Given a lead who reads for 12 days, considers for 3, is alerted, accepted, then won (all in January)
    journey = Journey()
    journey.apply(identify(T0))
    journey.apply(page("/pricing", T0 + days(12)))
    journey.apply(track("Case Study Downloaded", T0 + days(12)))
    journey.apply(page("/pricing/team", T0 + days(15)))
    journey.apply(page("/blog/a", T0 + days(15)))
    journey.apply(SalesUpdate(status="accepted"), now=T0 + days(16))
    journey.apply(SalesUpdate(status="won", amount=24_000), now=T0 + days(17))
    counted = _counted(journey)["2026-01"]

    assert counted["leads|new"] == 1
    assert counted["days|awareness|consideration|12"] == 1
    assert counted["days|consideration|decision|3"] == 1
    assert counted["mql|alerts"] == 1
    assert counted["mql|accepted"] == 1
    assert counted["accuracy|accepted_flagged_first"] == 1
    assert counted["revenue|won|nurtured"] == 24_000  # it got nurture email before it was won
    assert counted["deals|won|nurtured"] == 1


def test_sales_acceptance_counts_in_the_month_the_lead_qualified() -> None:
    journey = Journey()
    journey.apply(identify(T0))
    journey.apply(track("Demo Requested", T0 + days(1)))
    journey.apply(SalesUpdate(status="accepted"), now=T0 + days(40))  # in February

    counted = _counted(journey)
    assert counted["2026-01"]["mql|alerts"] == 1
    assert counted["2026-01"]["mql|accepted"] == 1
    assert "mql|accepted" not in counted.get("2026-02", {})


def test_an_email_opened_three_times_counts_one_open_and_a_scanners_open_none() -> None:
    journey = Journey()
    journey.apply(identify(T0))
    for i in range(3):
        journey.apply(_opened("awareness-01", T0 + days(1 + i), f"open-{i}"))
    journey.apply(_opened("awareness-02", T0 + days(5), "scan", automated=True))
    journey.apply(_opened("awareness-01", T0 + days(1), "open-0"))  # a duplicate changes nothing
    counted = _counted(journey)["2026-01"]

    assert counted["email|awareness|awareness-01|0|opened"] == 1
    assert "email|awareness|awareness-02|0|opened" not in counted
    assert counted["email|awareness|awareness-02|0|opened_automated"] == 1


def test_a_lead_suppressed_after_re_engagement_is_counted_for_the_suppression_rate() -> None:
    journey = Journey()
    journey.apply(identify(T0))
    journey.run_until(T0 + days(200))
    months = _counted(journey)

    assert sum(m.get("reengagement|entered", 0) for m in months.values()) == 1
    assert sum(m.get("reengagement|suppressed", 0) for m in months.values()) == 1


# --- the figures -----------------------------------------------------------------------------------------------
COUNTERS = {
    "2026-10": {"mql|alerts": 10, "mql|accepted": 2},
    "2026-11": {
        "leads|new": 40,
        "stage|entered|consideration": 20,
        "mql|alerts": 10,
        "mql|accepted": 4,
        "accuracy|accepted": 5,
        "accuracy|accepted_flagged_first": 4,
        "days|awareness|consideration|2": 1,
        "days|awareness|consideration|4": 1,
        "days|awareness|consideration|6": 1,
        "days|awareness|consideration|8": 1,
        "revenue|won|nurtured": 50_000,
        "deals|won|nurtured": 2,
        "revenue|won|not_nurtured": 10_000,
        "deals|won|not_nurtured": 1,
        "reengagement|entered": 10,
        "reengagement|suppressed": 7,
        "email|awareness|awareness-01-why-drips-stall|0|sent": 100,
        "email|awareness|awareness-01-why-drips-stall|0|delivered": 98,
        "email|awareness|awareness-01-why-drips-stall|0|opened": 24,
        "email|awareness|awareness-01-why-drips-stall|0|clicked": 5,
        "email|awareness|awareness-01-why-drips-stall|0|clicked_automated": 40,
        "email|awareness|awareness-01-why-drips-stall|0|bounced_permanent": 2,
        "unsubscribed|awareness|awareness-01-why-drips-stall": 1,
    },
}


def test_the_four_metrics_of_a_month_against_a_baseline() -> None:
    report = monthly_report(COUNTERS, "2026-11", baseline="2026-10", programme=starter())

    assert report.mql_to_sql == pytest.approx(0.4)
    assert report.baseline_mql_to_sql == pytest.approx(0.2)
    assert report.mql_to_sql_change == pytest.approx(20.0)
    awareness = report.stage_times[0]
    assert (awareness.leads, awareness.median_days, awareness.p75_days) == (4, 4.0, 6.0)
    assert (report.won_nurtured, report.won_not_nurtured) == (50_000, 10_000)
    assert report.suppression_rate == pytest.approx(0.7)
    assert report.suppression_advice is not None
    assert report.accuracy_flagged_first == pytest.approx(0.8)


def test_email_rates_are_out_of_emails_delivered_and_scanner_clicks_are_apart() -> None:
    report = monthly_report(COUNTERS, "2026-11", programme=starter())
    [email] = report.emails
    rates = email.rates
    assert rates["open"] == pytest.approx(24 / 98)
    assert rates["click"] == pytest.approx(5 / 98)
    assert rates["bounce"] == pytest.approx(2 / 100)
    assert email.unsubscribed == 1
    assert report.scanner_clicks == 40
    assert report.funnel[0] == ("new leads", 40)


def test_an_empty_month_says_so() -> None:
    report = monthly_report(COUNTERS, "2026-12")
    assert report.empty
    assert report.mql_to_sql is None


def test_suppression_under_60_percent_gives_no_advice() -> None:
    counters = {"2026-11": {"reengagement|entered": 10, "reengagement|suppressed": 6}}
    assert monthly_report(counters, "2026-11").suppression_advice is None


def test_percentiles_are_the_nearest_rank_of_whole_days() -> None:
    assert percentile({1: 1}, 0.5) == 1
    assert percentile({2: 1, 4: 1, 6: 1, 8: 1}, 0.75) == 6
    assert percentile({}, 0.5) is None


# --- A/B subject tests -----------------------------------------------------------------------------------------
def _variants(opens: tuple[int, int], delivered: int) -> dict[str, dict[str, float]]:
    key = "email|awareness|awareness-02-three-buyer-signals"
    return {
        "2026-11": {
            **{f"{key}|{v}|delivered": delivered for v in (0, 1)},
            **{f"{key}|{v}|sent": delivered for v in (0, 1)},
            f"{key}|0|opened": opens[0],
            f"{key}|1|opened": opens[1],
        }
    }


def _two_proportion_p(x1: int, x2: int, n: int) -> float:
    pooled = (x1 + x2) / (2 * n)
    z = abs(x1 / n - x2 / n) / math.sqrt(pooled * (1 - pooled) * 2 / n)
    return 2 * (1 - NormalDist().cdf(z))


def test_a_subject_test_with_a_significant_difference_names_the_winner_with_its_p_value() -> None:
    [test] = monthly_report(_variants((250, 200), 1000), "2026-11").ab_tests

    assert test.winner == 0
    assert test.p_value == pytest.approx(_two_proportion_p(250, 200, 1000), abs=1e-6)
    assert test.p_value == pytest.approx(0.0074, abs=0.0005)
    assert test.verdict.startswith("variant 0 wins")


def test_a_subject_test_too_small_to_tell_says_about_how_many_more_sends_it_needs() -> None:
    [test] = monthly_report(_variants((25, 20), 100), "2026-11").ab_tests

    assert test.winner is None
    effect = 2 * math.asin(math.sqrt(0.25)) - 2 * math.asin(math.sqrt(0.20))
    # Two independent samples on the arcsine scale: each observed difference has variance 2/n
    per_variant = 2 * ((NormalDist().inv_cdf(0.975) + NormalDist().inv_cdf(0.8)) / effect) ** 2
    expected = 2 * math.ceil(per_variant) - 200
    assert test.sends_needed is not None
    assert abs(test.sends_needed - expected) <= 2
    assert test.verdict == f"not yet, need about {test.sends_needed:,} more sends"


def test_ab_result_before_any_delivery_says_not_yet() -> None:
    rows = monthly_report(_variants((0, 0), 0), "2026-11").emails
    assert ab_result("x", [rows[0], rows[0]]).verdict.startswith("not yet")


def test_month_of_is_the_utc_calendar_month() -> None:
    assert month_of(T0) == "2026-01"


def test_opens_counted_in_a_later_month_than_their_sends_never_break_the_report() -> None:
    # An email sent on 31 October and opened on 1 November: November has more opens than sends
    key = "email|awareness|awareness-02-three-buyer-signals"
    counters = {"2026-11": {f"{key}|0|sent": 16, f"{key}|0|opened": 7, f"{key}|1|sent": 31, f"{key}|1|opened": 48}}
    [test] = monthly_report(counters, "2026-11").ab_tests
    assert test.verdict


# --- what the user trial found ----------------------------------------------------------------------------------
def test_a_deal_won_without_an_acceptance_first_counts_as_sales_taking_the_lead() -> None:
    journey = Journey()
    journey.apply(identify(T0))
    journey.apply(track("Demo Requested", T0 + days(1)))
    journey.apply(SalesUpdate(status="won", amount=20_000), now=T0 + days(3))
    journey.apply(SalesUpdate(status="accepted"), now=T0 + days(4))  # said late: not a second SQL
    assert _counted(journey)["2026-01"]["mql|accepted"] == 1


def test_ab_rows_carry_every_figure_of_their_variant() -> None:
    key = "email|awareness|awareness-05-field-notes"
    counters = {
        "2026-11": {
            **{f"{key}|{v}|{what}": 10 for v in (0, 1) for what in ("sent", "delivered")},
            f"{key}|0|opened": 3,
            f"{key}|0|clicked": 1,
            f"{key}|1|complained": 1,
            f"{key}|1|clicked_automated": 2,
        }
    }
    [test] = monthly_report(counters, "2026-11").ab_tests
    first, second = sorted(test.variants, key=lambda r: r.variant or 0)
    assert (first.clicked, second.complained, second.clicked_automated) == (1, 1, 2)


def test_an_ab_test_without_opens_says_so_instead_of_a_p_value(recwarn: pytest.WarningsRecorder) -> None:
    [test] = monthly_report(_variants((0, 0), 50), "2026-11").ab_tests
    assert (test.p_value, test.verdict) == (None, "not yet: no opens")
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_drop_off_is_found_after_a_first_email_nobody_clicked() -> None:
    rows = monthly_report(
        {
            "2026-11": {
                "email|awareness|a1|0|delivered": 10,
                "email|awareness|a2|0|delivered": 10,
                "email|awareness|a2|0|clicked": 4,
                "email|awareness|a3|0|delivered": 10,
                "email|awareness|a3|0|clicked": 1,
            }
        },
        "2026-11",
    )
    assert rows.drop_off == {"awareness": "a2"}
