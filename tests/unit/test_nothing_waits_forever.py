"""Issue 7, "nothing waits forever": a lead that hears nothing more reaches a terminal state within a bounded,
documented time (`Programme.quiet_days`), from every state it can reach."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nurture.domain.journey import Tick
from nurture.domain.messages import Message
from nurture.domain.programme import ProgrammeError, Stage, load_programme
from tests.support import T0, Journey, days, identify, known_lead, page, starter, starter_yaml, track

TERMINAL = {Stage.SUPPRESSED, Stage.OPTED_OUT, Stage.EXCLUDED, Stage.SALES_ENGAGED}


def _in_consideration() -> Journey:
    journey = Journey().feed([page("/pricing", T0), track("Case Study Downloaded", T0)])
    journey.apply(identify(T0, company_size=240))
    assert journey.lead.stage is Stage.CONSIDERATION
    return journey


def test_a_consideration_lead_whose_intent_decayed_returns_to_awareness_after_the_grace_period() -> None:
    # Given a consideration lead at 50 that has had every consideration email and hears nothing more
    journey = _in_consideration()
    below = datetime(2026, 2, 5, tzinfo=UTC)
    journey.run_until(below + days(13))
    # Its intent reads 40 until its 31st day, 39 from midnight UTC on it: the 14 days' grace start then
    assert journey.lead.intent(starter(), below - timedelta(seconds=1)) == 40
    assert journey.lead.intent(starter(), below) == 39
    assert journey.lead.stage is Stage.CONSIDERATION
    assert journey.lead.exhausted
    # When the clock reaches the end of the grace period, Then it is back in awareness, and told why
    journey.run_until(below + days(14))
    assert journey.lead.stage is Stage.AWARENESS
    [back] = journey.transitions[-1:]
    assert back.at == below + days(14)
    assert back.reason == "intent 35 below the consideration threshold (40) for 14 days"


def test_a_consideration_lead_decayed_to_32_does_not_wait_forever() -> None:
    journey = _in_consideration()
    journey.run_until(T0 + days(58))
    assert journey.lead.next_action_at(starter()) is not None
    journey.run_until(T0 + days(365))
    assert journey.lead.stage is Stage.SUPPRESSED
    assert journey.stages[-3:] == ["awareness", "re_engagement", "suppressed"]


def test_engagement_that_lifts_the_score_again_restarts_the_grace() -> None:
    journey = _in_consideration()
    journey.run_until(T0 + days(40))  # below 40 since day 31
    journey.apply(page("/blog/back", T0 + days(40)))  # 5 points: 39 + 5, at or above 40 again
    journey.run_until(T0 + days(46))
    assert journey.lead.stage is Stage.CONSIDERATION
    return_at = journey.lead.return_at(starter())
    assert return_at is not None
    assert return_at > T0 + days(50)


def test_a_lead_back_from_decision_below_the_threshold_returns_after_the_grace_period() -> None:
    # Given a decision lead on 80 points of early-morning signals, quiet until decay and the timeout move it on
    journey = Journey().feed([page("/pricing", T0), page("/pricing/x", T0), track("Case Study Downloaded", T0)])
    journey.apply(identify(T0))
    journey.run_until(T0 + days(14))
    assert journey.lead.stage is Stage.CONSIDERATION
    journey.run_until(T0 + days(200))
    assert "awareness" in journey.stages[2:]


def _reengage(journey: Journey, emails: int) -> datetime:
    """Runs the lead into re-engagement, lets `emails` re-engagement emails go out, then engages it."""
    while journey.lead.stage is not Stage.RE_ENGAGEMENT:
        due = journey.lead.next_action_at(journey.programme)
        assert due is not None
        journey.apply(Tick(), now=due)
    while len([s for s in journey.sends if s.sequence is Stage.RE_ENGAGEMENT]) < emails:
        due = journey.lead.next_action_at(journey.programme)
        assert due is not None
        journey.apply(Tick(), now=due)
    at = journey.sends[-1].at + days(1)
    journey.apply(page("/blog/back-again", at))
    assert journey.lead.stage is Stage.AWARENESS
    return at


def test_each_re_engagement_episode_gets_its_three_emails() -> None:
    # Given a programme with six re-engagement emails, and a lead that answered the first episode's second email
    more = "".join(f"      - re-engagement-0{i}\n" for i in (4, 5, 6))
    six = starter_yaml().replace("      - re-engagement-03-last-note\n", "      - re-engagement-03-last-note\n" + more)
    journey = known_lead()
    journey.programme = load_programme(six)
    back = _reengage(journey, emails=2)
    # When it goes quiet again
    journey.run_until(back + days(365))
    # Then its second episode sends three more emails before it is suppressed
    second = [s for s in journey.sends if s.sequence is Stage.RE_ENGAGEMENT and s.at > back]
    assert [s.content_id for s in second] == ["re-engagement-03-last-note", "re-engagement-04", "re-engagement-05"]
    assert journey.lead.stage is Stage.SUPPRESSED
    assert journey.transitions[-1].reason == "3 re-engagement emails without engagement"


def test_an_episode_out_of_emails_is_marked_and_lasts_as_long_as_three_emails_would_have() -> None:
    # Given the starter's three re-engagement emails, two of them used in a first episode the lead answered
    journey = known_lead()
    back = _reengage(journey, emails=2)
    journey.run_until(back + days(90))
    assert journey.lead.stage is Stage.RE_ENGAGEMENT
    entered = journey.lead.stage_entered_at
    assert entered is not None
    # When the second episode has sent the last unsent one
    journey.run_until(entered + days(8))
    second = [s for s in journey.sends if s.sequence is Stage.RE_ENGAGEMENT and s.at >= entered]
    assert [s.content_id for s in second] == ["re-engagement-03-last-note"]
    # Then the lead is marked exhausted (marketers see it waits on content) and is not suppressed a cadence later
    assert journey.lead.exhausted
    assert journey.lead.stage is Stage.RE_ENGAGEMENT
    # but three cadences after it entered, as a full episode would have been, saying why
    journey.run_until(entered + days(21))
    assert journey.lead.stage is Stage.SUPPRESSED
    assert journey.transitions[-1].at == entered + days(21)
    assert journey.transitions[-1].reason == (
        "1 re-engagement emails without engagement (no re-engagement emails left to send)"
    )


# --- the programme setting ----------------------------------------------------------------------
def test_the_grace_period_is_a_programme_setting_with_a_default() -> None:
    assert starter().thresholds.grace_days == 14
    without = starter_yaml().replace("  grace_days: 14\n", "")
    assert without != starter_yaml()
    assert load_programme(without).thresholds.grace_days == 14
    assert load_programme(starter_yaml().replace("grace_days: 14", "grace_days: 30")).thresholds.grace_days == 30


@pytest.mark.parametrize(
    ("change", "where", "says"),
    [
        (("grace_days: 14", "grace_days: 0"), "thresholds.grace_days", "greater than 0"),
        (("grace_days: 14", "grace_days: 2.5"), "thresholds.grace_days", "valid integer"),
        (("    timeout: {after_days: 90, to: re_engagement}\n", ""), "sequences.awareness.timeout", "forever"),
        (
            (
                "    suppress_after_emails: 3\n",
                "    suppress_after_emails: 3\n    timeout: {after_days: 30, to: awareness}\n",
            ),
            "sequences.re_engagement.timeout.to",
            "round in a circle",
        ),
    ],
)
def test_a_programme_where_a_quiet_lead_could_wait_forever_is_rejected(change, where: str, says: str) -> None:
    with pytest.raises(ProgrammeError) as raised:
        load_programme(starter_yaml().replace(*change))
    assert any(issue.dotted == where and says in (issue.problem + issue.fix) for issue in raised.value.issues), str(
        raised.value
    )


def test_the_bound_is_derived_from_the_programme() -> None:
    p = starter()
    # 14 (decision) + decay below 40 + 14 (grace) + 90 (awareness) + 3 x (7 + 7 + 7) + 7 (re-engagement)
    assert p.episode_days == 70
    assert p.decay_days(39) == 0
    assert p.decay_days(100) == 122  # floor(90 * log2(100.5 / 39.5)) + 1
    assert p.quiet_days(39) == 14 + 14 + 90 + 70
    assert p.quiet_days(100) == 14 + 122 + 14 + 90 + 70


# --- the property -------------------------------------------------------------------------------
PATHS = ["/pricing", "/pricing/team", "/blog/a", "/product/x", "/products/y", "/about"]
EVENTS = ["Case Study Downloaded", "Email Opened", "Demo Requested", "Newsletter Signup", "Unsubscribed", "Demo Booked"]
_ids = itertools.count()


@st.composite
def prefixes(draw: st.DrawFn) -> list[Message]:
    """Any messages a lead may have sent, over a year, with its identify somewhere among them."""
    moments = st.floats(min_value=0, max_value=365)
    drawn = draw(
        st.lists(
            st.one_of(
                st.tuples(st.just("page"), st.sampled_from(PATHS), moments),
                st.tuples(st.just("track"), st.sampled_from(EVENTS), moments),
                st.tuples(st.just("identify"), st.sampled_from(["GB", "US", "KP"]), moments),
            ),
            max_size=20,
        )
    )
    drawn.append(("identify", "GB", draw(moments)))
    made: list[Message] = []
    for kind, what, day in sorted(drawn, key=lambda item: item[2]):
        at, message_id = T0 + days(day), f"q-{next(_ids)}"
        if kind == "page":
            made.append(page(what, at, message_id=message_id))
        elif kind == "track":
            made.append(track(what, at, message_id=message_id))
        else:
            made.append(identify(at, message_id=message_id, country=what))
    return made


@settings(max_examples=150, deadline=None)
@given(prefixes())
def test_a_lead_that_hears_nothing_more_reaches_a_terminal_state_within_the_documented_bound(prefix) -> None:
    # Given a lead after any messages, its intent when the last one arrived
    programme = starter()
    journey = Journey().feed(prefix)
    last = prefix[-1].timestamp
    bound = timedelta(days=programme.quiet_days(journey.lead.intent(programme, last)))
    # When only the clock moves, the dispatcher looking at the lead whenever it is due
    for _ in range(1_000):
        due = journey.lead.next_action_at(programme)
        if due is None:
            break
        assert due <= last + bound, f"{journey.lead.stage} still due at {due}"
        journey.apply(Tick(), now=due)
    # Then it has stopped in a terminal state, within the bound
    assert journey.lead.stage in TERMINAL
    assert all(t.at <= last + bound for t in journey.transitions)
