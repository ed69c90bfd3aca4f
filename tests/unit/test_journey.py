"""The journey state machine, rule by rule from DESIGN.md's sequence table."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from nurture.domain.journey import SalesUpdate, Send, Tick, Transition
from nurture.domain.programme import Programme, Stage, load_programme
from nurture.tools.engine import Engine
from tests.support import T0, Journey, days, identify, known_lead, page, starter, starter_yaml, track


def _lead_in(stage: Stage) -> Journey:
    """A known lead placed in `stage` the way a real one gets there."""
    if stage is Stage.EXCLUDED:
        return known_lead(email="dee@rivalnurture.example")
    if stage is Stage.CONSIDERATION:  # history from before we knew who they were
        journey = Journey().feed([page("/pricing", T0), track("Case Study Downloaded", T0)])
        journey.apply(identify(T0, company_size=240, seniority="vp"))
        return journey
    if stage is Stage.DECISION:
        journey = Journey().feed([page("/pricing", T0), track("Case Study Downloaded", T0), page("/pricing/team", T0)])
        journey.apply(identify(T0, company_size=240, seniority="vp"))
        return journey
    journey = known_lead(company_size=240, seniority="vp")
    if stage is Stage.RE_ENGAGEMENT:
        journey.run_until(T0 + days(91))
    elif stage is Stage.SUPPRESSED:
        journey.run_until(T0 + days(200))
    elif stage is Stage.OPTED_OUT:
        journey.apply(track("Unsubscribed", T0))
    elif stage is Stage.SALES_ENGAGED:
        journey.apply(track("Demo Booked", T0))
    assert journey.lead.stage is stage
    return journey


# --- entering -----------------------------------------------------------------------------
def test_a_visitor_is_not_a_lead_until_their_email_is_known() -> None:
    journey = Journey().feed([page("/blog/a", T0), page("/pricing", T0)])
    assert journey.lead.stage is None
    assert journey.effects == []


@pytest.mark.parametrize(
    ("history", "stage"),
    [
        ([page("/blog/a")], Stage.AWARENESS),
        ([page("/pricing"), page("/blog/a"), page("/blog/b")], Stage.CONSIDERATION),
        ([page("/pricing"), page("/pricing/x"), track("Case Study Downloaded")], Stage.DECISION),
    ],
)
def test_a_new_lead_enters_the_sequence_its_intent_earns(history, stage: Stage) -> None:
    journey = Journey().feed(history)
    journey.apply(identify(T0))
    assert journey.lead.stage is stage
    assert journey.transitions[0].reason.startswith("new lead")


def test_intent_crossing_40_moves_awareness_to_consideration() -> None:
    journey = known_lead().feed([page("/pricing", T0 + days(1)), page("/blog/a", T0 + days(1))])
    assert journey.lead.stage is Stage.AWARENESS
    journey.apply(page("/blog/b", T0 + days(1)))
    assert journey.stages == ["awareness", "consideration"]
    assert journey.transitions[-1].reason == "intent 40 reached the consideration threshold (40)"


def test_intent_crossing_80_moves_to_decision_and_alerts_sales_with_what_they_need() -> None:
    journey = _lead_in(Stage.CONSIDERATION)
    journey.apply(identify(T0, problem="slow follow-up", budget_authority=True))
    journey.feed([page("/pricing/team", T0)])
    assert journey.lead.stage is Stage.DECISION
    [alert] = journey.alerts
    assert alert.traits.company_size == 240
    assert alert.traits.seniority == "vp"
    assert alert.traits.problem == "slow follow-up"
    assert alert.traits.budget_authority is True
    assert alert.missing == ("timeline",)


@pytest.mark.parametrize("stage", [Stage.AWARENESS, Stage.CONSIDERATION, Stage.RE_ENGAGEMENT])
def test_a_demo_request_routes_to_decision_and_alerts_at_once(stage: Stage) -> None:
    journey = _lead_in(stage)
    entered = journey.lead.stage_entered_at
    assert entered is not None
    now = entered + days(1)
    journey.apply(track("Demo Requested", now))
    assert journey.lead.stage is Stage.DECISION
    assert [a.reason for a in journey.alerts] == ["Demo request"]
    assert journey.alerts[0].at == now


def test_a_sales_alert_shows_the_decayed_intent_as_compared() -> None:
    # Given a lead in consideration whose pricing visits and case study were ten days ago
    journey = _lead_in(Stage.CONSIDERATION)
    # When they request a demo
    journey.apply(track("Demo Requested", T0 + days(10)))
    # Then the alert tells sales the intent as it is now, decayed, in the whole points the thresholds compare
    [alert] = journey.alerts
    assert alert.intent == 146


@pytest.mark.parametrize("stage", [Stage.DECISION, Stage.SALES_ENGAGED, Stage.OPTED_OUT, Stage.SUPPRESSED])
def test_a_demo_request_still_reaches_sales_from_a_lead_that_gets_no_nurture(stage: Stage) -> None:
    journey = _lead_in(stage)
    alerts_before = len(journey.alerts)
    sends_before = len(journey.sends)
    at = T0 + days(5 if stage is Stage.DECISION else 250)  # a quiet decision lead moves on after 14 days
    journey.apply(track("Demo Requested", at))
    journey.run_until(at + days(10))
    assert len(journey.alerts) == alerts_before + 1
    assert journey.lead.stage is stage
    if stage is not Stage.DECISION:
        assert len(journey.sends) == sends_before
    # Sales is told when the lead opted out or is suppressed, so nobody emails them by hand
    notes = {
        Stage.OPTED_OUT: " (lead has opted out of email)",
        Stage.SUPPRESSED: " (lead is suppressed: its address bounced or it stopped answering; call, do not email)",
    }
    assert journey.alerts[-1].reason == f"Demo request{notes.get(stage, '')}"


def test_an_excluded_lead_gets_no_email_and_raises_no_alert() -> None:
    journey = _lead_in(Stage.EXCLUDED)
    journey.apply(track("Demo Requested", T0 + days(1)))
    journey.run_until(T0 + days(120))
    assert journey.sends == []
    assert journey.alerts == []
    assert journey.transitions[-1].reason == "competitor domain rivalnurture.example"


# --- leaving ------------------------------------------------------------------------------
def test_decision_returns_to_consideration_after_14_days_without_engagement() -> None:
    journey = _lead_in(Stage.DECISION)
    journey.run_until(T0 + days(13.9))
    assert journey.lead.stage is Stage.DECISION
    journey.run_until(T0 + days(14))
    assert journey.lead.stage is Stage.CONSIDERATION
    assert journey.transitions[-1].reason == "14 days without engagement"


def test_an_email_open_alone_does_not_keep_a_lead_in_decision() -> None:
    journey = _lead_in(Stage.DECISION)
    journey.apply(track("Email Opened", T0 + days(10)))
    journey.run_until(T0 + days(14))
    assert journey.lead.stage is Stage.CONSIDERATION


def test_a_page_visit_restarts_the_decision_clock() -> None:
    journey = _lead_in(Stage.DECISION)
    journey.apply(page("/docs/setup", T0 + days(10)))
    journey.run_until(T0 + days(23.9))
    assert journey.lead.stage is Stage.DECISION
    journey.run_until(T0 + days(24))
    assert journey.lead.stage is Stage.CONSIDERATION


def test_90_days_in_awareness_below_40_moves_to_re_engagement() -> None:
    journey = known_lead().feed([page("/blog/a", T0 + days(30))])
    journey.run_until(T0 + days(89.9))
    assert journey.lead.stage is Stage.AWARENESS
    journey.run_until(T0 + days(90))
    assert journey.stages == ["awareness", "re_engagement"]
    assert journey.transitions[-1].reason == "90 days in awareness"


def test_three_re_engagement_emails_without_engagement_suppress() -> None:
    journey = _lead_in(Stage.RE_ENGAGEMENT)
    journey.run_until(T0 + days(200))
    re_engagement = [s for s in journey.sends if s.sequence is Stage.RE_ENGAGEMENT]
    assert len(re_engagement) == 3
    assert journey.lead.stage is Stage.SUPPRESSED
    # suppressed one cadence after the last unanswered email, not at the moment it went out
    assert journey.transitions[-1].at == re_engagement[-1].at + days(7)
    assert journey.transitions[-1].reason == "3 re-engagement emails without engagement"


def _suppressing_after_two_emails() -> Programme:
    """The starter programme, suppressing after two of its three re-engagement emails, sending every day."""
    return load_programme(
        starter_yaml()
        .replace("suppress_after_emails: 3", "suppress_after_emails: 2")
        .replace("days: [mon, tue, wed, thu, fri]", "days: [mon, tue, wed, thu, fri, sat, sun]")
    )


def test_re_engagement_suppresses_after_the_configured_number_of_emails() -> None:
    # Given a programme that suppresses after two of its three re-engagement emails
    journey = Journey(_suppressing_after_two_emails())
    journey.apply(identify(T0))
    # When 90 quiet days in awareness move the lead to re-engagement (its first email goes out at that moment)
    journey.run_until(T0 + days(200))
    entered = journey.transitions[1]
    assert (entered.to_stage, entered.at) == (Stage.RE_ENGAGEMENT, T0 + days(90))
    # Then two re-engagement emails go out, the first among them, and the lead is suppressed
    re_engagement = [s for s in journey.sends if s.sequence is Stage.RE_ENGAGEMENT]
    assert [s.at for s in re_engagement] == [entered.at, entered.at + days(7)]
    assert journey.lead.stage is Stage.SUPPRESSED


def test_a_second_stay_in_re_engagement_counts_only_its_own_emails() -> None:
    # Given the same programme, and a lead who answered the first re-engagement email and then went quiet again
    programme = _suppressing_after_two_emails()
    journey = Journey(programme)
    journey.apply(identify(T0))
    journey.run_until(T0 + days(90))
    journey.apply(page("/blog/a", T0 + days(91)))
    assert journey.lead.stage is Stage.AWARENESS
    # When 90 quiet days bring the lead back to re-engagement
    journey.run_until(T0 + days(365))
    # Then this stay sends its own two emails (the two not sent yet) before the lead is suppressed
    re_engagement = [s.content_id for s in journey.sends if s.sequence is Stage.RE_ENGAGEMENT]
    assert re_engagement == programme.sequence(Stage.RE_ENGAGEMENT).emails
    assert journey.lead.stage is Stage.SUPPRESSED


def test_an_open_in_re_engagement_is_not_engagement() -> None:
    journey = _lead_in(Stage.RE_ENGAGEMENT)
    journey.apply(track("Email Opened", T0 + days(92)))
    assert journey.lead.stage is Stage.RE_ENGAGEMENT


@pytest.mark.parametrize(
    ("engagement", "stage"),
    [
        ([page("/blog/back-again")], Stage.AWARENESS),
        ([page("/pricing"), page("/pricing/team")], Stage.CONSIDERATION),
    ],
)
def test_engagement_in_re_engagement_moves_the_lead_back_by_score(engagement, stage: Stage) -> None:
    journey = _lead_in(Stage.RE_ENGAGEMENT)
    at = T0 + days(95)
    journey.feed([m.model_copy(update={"timestamp": at}) for m in engagement])
    assert journey.lead.stage is stage
    assert "engaged again" in journey.transitions[-1].reason or "threshold" in journey.transitions[-1].reason


@pytest.mark.parametrize("stage", [Stage.AWARENESS, Stage.CONSIDERATION, Stage.DECISION])
def test_a_demo_booking_hands_the_lead_to_sales_and_stops_nurture(stage: Stage) -> None:
    journey = _lead_in(stage)
    journey.apply(track("Demo Booked", T0 + days(1)))
    sends = len(journey.sends)
    journey.run_until(T0 + days(365))
    assert journey.lead.stage is Stage.SALES_ENGAGED
    assert len(journey.sends) == sends


def test_sales_engagement_stops_consideration_nurture() -> None:
    journey = _lead_in(Stage.CONSIDERATION)
    journey.apply(SalesUpdate(status="engaged"), now=T0 + days(2))
    journey.run_until(T0 + days(60))
    assert journey.lead.stage is Stage.SALES_ENGAGED
    assert all(s.at <= T0 + days(2) for s in journey.sends)


@pytest.mark.parametrize("stage", [Stage.OPTED_OUT, Stage.SUPPRESSED, Stage.EXCLUDED, Stage.SALES_ENGAGED])
def test_a_sales_update_for_a_lead_outside_nurture_changes_no_stage(stage: Stage) -> None:
    # Given a lead that gets no nurture email: opted out, suppressed, excluded, or already with sales
    journey = _lead_in(stage)
    transitions = len(journey.transitions)
    # When sales reports a booked demo
    journey.apply(SalesUpdate(status="demo_booked"), now=T0 + days(1))
    # Then it keeps its stage, with no transition: an opt-out stays on record, so a later alert still says so
    assert journey.lead.stage is stage
    assert len(journey.transitions) == transitions


@pytest.mark.parametrize(
    ("event", "properties", "stage"),
    [
        ("Unsubscribed", {}, Stage.OPTED_OUT),
        ("Email Complained", {}, Stage.OPTED_OUT),
        ("Email Bounced", {"bounce_type": "Permanent"}, Stage.SUPPRESSED),
    ],
)
def test_opt_outs_complaints_and_hard_bounces_stop_email_for_good(event, properties, stage: Stage) -> None:
    journey = _lead_in(Stage.DECISION)
    journey.apply(track(event, T0 + days(1), **properties))
    sends = len(journey.sends)
    journey.feed([page("/pricing", T0 + days(2)), page("/blog/x", T0 + days(3))])
    journey.run_until(T0 + days(365))
    assert journey.lead.stage is stage
    assert len(journey.sends) == sends


def test_a_transient_bounce_changes_nothing() -> None:
    journey = _lead_in(Stage.AWARENESS)
    journey.apply(track("Email Bounced", T0 + days(1), bounce_type="Transient"))
    assert journey.lead.stage is Stage.AWARENESS


# --- sending ------------------------------------------------------------------------------
def test_the_first_email_of_a_new_sequence_goes_out_in_the_next_send_window() -> None:
    saturday = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
    journey = known_lead(saturday)
    journey.run_until(saturday + days(3))
    assert journey.sends[0].at == datetime(2026, 1, 12, 9, 0, tzinfo=UTC)  # Monday 09:00 London
    assert journey.sends[0].content_id == "awareness-01-why-drips-stall"


def test_send_windows_follow_the_leads_time_zone() -> None:
    evening_utc = datetime(2026, 1, 5, 20, 0, tzinfo=UTC)  # 12:00 in Los Angeles
    journey = known_lead(evening_utc, timezone="America/Los_Angeles")
    journey.run_until(evening_utc + days(1))
    assert journey.sends[0].at == evening_utc


@pytest.mark.parametrize(("stage", "cadence"), [(Stage.AWARENESS, 14), (Stage.CONSIDERATION, 7), (Stage.DECISION, 3)])
def test_each_sequence_sends_at_its_own_cadence(stage: Stage, cadence: int) -> None:
    # Given a send window open every day, so weekends do not shift the emails
    every_day = load_programme(
        starter_yaml().replace("days: [mon, tue, wed, thu, fri]", "days: [mon, tue, wed, thu, fri, sat, sun]")
    )
    journey = _lead_in(stage)
    journey.programme = every_day
    journey.apply(page("/docs/keep-engaged", T0 + days(6)))  # keeps a decision lead there long enough
    journey.run_until(T0 + days(3 * cadence - 1))
    sends = [s for s in journey.sends if s.sequence is stage]
    gaps = {(b.at - a.at) for a, b in itertools.pairwise(sends)}
    assert len(sends) >= 2
    assert gaps == {timedelta(days=cadence)}


def test_a_lead_never_gets_the_same_email_twice() -> None:
    journey = _lead_in(Stage.DECISION)
    journey.run_until(T0 + days(15))  # back to consideration
    journey.feed([page("/pricing/x", T0 + days(16)), page("/pricing/y", T0 + days(16))])  # decision again
    journey.run_until(T0 + days(60))
    ids = [s.content_id for s in journey.sends]
    assert len(ids) == len(set(ids))
    assert journey.stages.count("decision") == 2


def test_a_lead_who_has_had_every_email_of_a_sequence_is_marked_exhausted_not_spammed() -> None:
    journey = _lead_in(Stage.CONSIDERATION)
    emails = starter().sequences.consideration.emails
    journey.apply(page("/blog/still-reading", T0 + days(20)))  # still interested: it stays in consideration
    journey.run_until(T0 + days(7 * len(emails) + 1))
    assert journey.lead.stage is Stage.CONSIDERATION
    assert len(journey.sends) == len(emails)
    assert journey.lead.exhausted
    # no more email is planned: the next look is the lead's return to awareness, not a send
    assert journey.lead.next_action_at(starter()) == journey.lead.return_at(starter())


def test_no_more_than_three_emails_go_out_in_any_seven_days() -> None:
    journey = _lead_in(Stage.CONSIDERATION)
    for day in (1, 2, 3, 4):  # push it into decision and keep it engaged
        journey.apply(page(f"/pricing/p{day}", T0 + days(day)))
    journey.run_until(T0 + days(30))
    times = [s.at for s in journey.sends]
    for start in times:
        assert sum(1 for t in times if start <= t < start + days(7)) <= 3


def test_every_transition_records_the_programme_revision() -> None:
    journey = _lead_in(Stage.DECISION)
    assert {t.programme for t in journey.transitions} == {starter().revision}
    assert [h.to_stage for h in journey.lead.history] == [t.to_stage for t in journey.transitions]


def test_a_tick_with_nothing_due_changes_nothing() -> None:
    journey = _lead_in(Stage.AWARENESS)
    journey.run_until(T0 + days(1))
    before = journey.lead
    journey.apply(Tick(), now=T0 + days(2))
    assert journey.lead == before


# --- identity -----------------------------------------------------------------------------
def test_anonymous_history_joins_the_lead_on_identify() -> None:
    engine = Engine(starter())
    engine.run(
        [
            page("/pricing", T0, user=None, anonymous="a-1"),
            page("/pricing/team", T0 + days(1), user=None, anonymous="a-1"),
            identify(T0 + days(2), user="u-9", anonymous="a-1"),
        ]
    )
    [lead] = engine.leads.values()
    assert lead.stage is Stage.CONSIDERATION
    assert lead.tallies.days["pricing_page_visit"] == {T0.date(): 1, (T0 + days(1)).date(): 1}
    assert engine.name_of(lead.lead_id) == "u-9"


def test_an_older_identify_only_fills_in_missing_traits() -> None:
    journey = known_lead(T0 + days(5), title="VP Marketing")
    journey.apply(identify(T0, title="Marketing Manager", company="Northwind"))
    assert journey.lead.traits.title == "VP Marketing"
    assert journey.lead.traits.company == "Northwind"


def test_an_opt_out_given_before_identify_survives_the_merge() -> None:
    # Given a known lead on a laptop, and the same person on a phone, who left their email and then unsubscribed
    engine = Engine(starter())
    engine.run(
        [
            identify(T0, user="u-1", anonymous="a-laptop", email="ada@northwind.example"),
            identify(T0 + days(1), user=None, anonymous="a-phone", email="ada@northwind.example"),
            track("Unsubscribed", T0 + days(2), user=None, anonymous="a-phone"),
        ]
    )
    # When the phone is tied to the user, and a year goes by with more visits
    engine.run(
        [page("/blog/a", T0 + days(3), user="u-1", anonymous="a-phone"), page("/pricing", T0 + days(4), user="u-1")],
        until=T0 + days(365),
    )
    # Then the one lead left is opted out, and no nurture email went out after the opt-out
    [lead] = engine.leads.values()
    assert lead.stage is Stage.OPTED_OUT
    assert [s for s in engine.effects if isinstance(s, Send) and s.at > T0 + days(2)] == []


def test_an_email_sent_before_identify_is_not_sent_again_after_the_merge() -> None:
    # Given the same person as an anonymous form fill on a phone (two emails so far) and, from day 13, as a
    # known lead on a laptop (one email so far)
    engine = Engine(starter())
    engine.run(
        [
            identify(T0, user=None, anonymous="a-phone", email="ada@northwind.example"),
            identify(T0 + days(13), user="u-1", anonymous="a-laptop", email="ada@northwind.example"),
        ],
        until=T0 + days(20),
    )
    # When the phone is tied to the user and the journey goes on for months
    engine.run([page("/blog/a", T0 + days(21), user="u-1", anonymous="a-phone")], until=T0 + days(200))
    # Then the merged lead's record lists each email once: none was sent to the person twice after the merge
    [lead] = engine.leads.values()
    sent = [(e.sequence, e.content_id) for e in lead.sent]
    assert len(sent) == len(set(sent))
    after_merge = [(s.sequence, s.content_id) for s in engine.effects if isinstance(s, Send) and s.at > T0 + days(21)]
    before_merge = {(s.sequence, s.content_id) for s in engine.effects if isinstance(s, Send) and s.at <= T0 + days(21)}
    assert after_merge
    assert not set(after_merge) & before_merge


def test_a_visitor_who_left_their_email_carries_on_their_journey_once_they_log_in() -> None:
    # Given a signed-up user whose email we do not know yet, and the same person on a phone, who left their
    # email and company in a form, got the first awareness email and then read the blog
    engine = Engine(starter())
    engine.run(
        [
            page("/blog/a", T0, user="u-1"),
            identify(T0 + timedelta(hours=1), user=None, anonymous="a-phone", company="Northwind"),
            page("/blog/b", T0 + days(2), user=None, anonymous="a-phone"),
        ],
        until=T0 + days(3),
    )
    [phone] = [lead for lead in engine.leads.values() if lead.stage is not None]
    # When an email opened while logged in ties the phone to the user, and two months go by
    engine.run([track("Email Opened", T0 + days(4), user="u-1", anonymous="a-phone")], until=T0 + days(60))
    # Then one lead is left, with everything the phone knew: traits, transitions, last engagement
    [lead] = engine.leads.values()
    assert (lead.email, lead.traits.company) == ("a-phone@northwind.example", "Northwind")
    assert lead.history == phone.history
    assert lead.last_engagement_at == T0 + days(2)
    # And the journey carries on where the phone left it: no second welcome, and the awareness emails go on
    # at their cadence, each once
    assert [(t.from_stage, t.to_stage) for t in engine.effects if isinstance(t, Transition)] == [
        (None, Stage.AWARENESS)
    ]
    sends = [s.content_id for s in engine.effects if isinstance(s, Send)]
    assert sends == starter().sequence(Stage.AWARENESS).emails[:5]  # days 0, 14, 28, 42 and 56


def test_a_known_lead_keeps_its_stage_when_a_phones_form_fill_is_folded_in() -> None:
    # Given a known lead in decision, and the same person on a phone, who left their email in a form and so
    # started in awareness
    engine = Engine(starter())
    engine.run(
        [
            page("/pricing", T0, user="u-1"),
            track("Case Study Downloaded", T0, user="u-1"),
            page("/pricing/team", T0, user="u-1"),
            identify(T0, user="u-1", company_size=240, seniority="vp"),
            identify(T0 + timedelta(hours=1), user=None, anonymous="a-phone", email="u-1@northwind.example"),
        ]
    )
    assert sorted(lead.stage for lead in engine.leads.values() if lead.stage) == [Stage.AWARENESS, Stage.DECISION]
    before = len(engine.effects)
    # When an email opened on the phone, logged in, ties the phone to the user
    engine.run([track("Email Opened", T0 + timedelta(hours=2), user="u-1", anonymous="a-phone")])
    # Then the lead stays in decision: no step back to awareness, no transition at all
    [lead] = engine.leads.values()
    assert lead.stage is Stage.DECISION
    assert [e for e in engine.effects[before:] if isinstance(e, Transition)] == []
