"""Properties that must hold for any stream of messages, checked with hypothesis."""

from __future__ import annotations

import itertools
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from nurture.domain.journey import Send, Tick, Transition, new_lead, step
from nurture.domain.programme import Stage
from nurture.domain.scoring import intent_score, tally
from tests.support import T0, Journey, identify, page, starter, track

PATHS = [
    "/pricing",
    "/pricing/team",
    "/blog/a",
    "/blog/b",
    "/product/x",
    "/products/y",
    "/about",
    "/docs/setup",
]
EVENTS = [
    "Demo Requested",
    "Case Study Downloaded",
    "Email Opened",
    "Unsubscribed",
    "Demo Booked",
    "Email Complained",
    "Newsletter Signup",
]
EMAILS = ["ada@northwind.example", "bo@gmail.com", "dee@rivalnurture.example"]
_ids = itertools.count()

moments = st.floats(min_value=0, max_value=365).map(lambda d: T0 + timedelta(days=d))


@st.composite
def messages(draw):
    at = draw(moments)
    kind = draw(st.sampled_from(["page", "page", "track", "identify"]))
    message_id = f"p-{next(_ids)}"
    if kind == "page":
        return page(draw(st.sampled_from(PATHS)), at, message_id=message_id)
    if kind == "track":
        return track(draw(st.sampled_from(EVENTS)), at, message_id=message_id)
    return identify(
        at,
        message_id=message_id,
        email=draw(st.sampled_from(EMAILS)),
        country=draw(st.sampled_from(["GB", "US", "KP"])),
    )


streams = st.lists(messages(), min_size=1, max_size=25).map(lambda ms: sorted(ms, key=lambda m: m.timestamp))


def _play(stream, duplicate=False):
    journey = Journey()
    for message in stream:
        journey.apply(message)
        if duplicate:
            journey.apply(message)
    return journey.run_until(T0 + timedelta(days=400))


@settings(max_examples=150, deadline=None)
@given(streams)
def test_applying_every_message_twice_changes_nothing(stream) -> None:
    once, twice = _play(stream), _play(stream, duplicate=True)
    assert twice.effects == once.effects
    assert twice.lead == once.lead


@settings(max_examples=150, deadline=None)
@given(streams, st.randoms(use_true_random=False))
def test_the_final_intent_score_does_not_depend_on_arrival_order(stream, random) -> None:
    now = T0 + timedelta(days=366)
    shuffled = list(stream)
    random.shuffle(shuffled)
    scores = []
    for order in (stream, shuffled):
        lead = new_lead("u-1")
        for message in order:
            lead = step(lead, message, starter(), now).lead
        scores.append(lead.intent(starter(), now))
    assert scores[0] == scores[1]


@settings(max_examples=200, deadline=None)
@given(streams, st.floats(min_value=0, max_value=400), st.floats(min_value=0, max_value=400))
def test_decay_never_raises_a_score(stream, earlier, later) -> None:
    earlier, later = sorted((earlier, later))
    programme = starter()
    signals = tally((m for m in stream if m.type != "identify"), programme)
    before = intent_score(signals, programme, T0 + timedelta(days=earlier))
    after = intent_score(signals, programme, T0 + timedelta(days=later))
    assert after <= before + 1e-9


@settings(max_examples=150, deadline=None)
@given(streams)
def test_a_lead_is_in_exactly_one_stage_and_its_history_chains(stream) -> None:
    journey = _play(stream)
    transitions = [e for e in journey.effects if isinstance(e, Transition)]
    if journey.lead.stage is None:
        assert transitions == []
        return
    assert transitions[-1].to_stage is journey.lead.stage
    for before, after in itertools.pairwise(transitions):
        assert after.from_stage is before.to_stage
        assert after.to_stage is not before.to_stage


@settings(max_examples=150, deadline=None)
@given(streams)
def test_no_email_ever_goes_to_an_opted_out_suppressed_or_excluded_lead(stream) -> None:
    stopped = {Stage.OPTED_OUT, Stage.SUPPRESSED, Stage.EXCLUDED, Stage.SALES_ENGAGED}
    lead = new_lead("u-1")
    programme = starter()
    now = T0
    inputs = [(m, m.timestamp) for m in stream]
    horizon = T0 + timedelta(days=400)
    while inputs or (lead.next_action_at(programme) or horizon) < horizon:
        due = lead.next_action_at(programme)
        if inputs and (due is None or inputs[0][1] < due):
            given_input, now = inputs.pop(0)
        else:
            assert due is not None  # no input left, so a tick is due before the horizon
            given_input, now = Tick(), due
        stage_before = lead.stage
        outcome = step(lead, given_input, programme, now)
        sends = [e for e in outcome.effects if isinstance(e, Send)]
        if stage_before in stopped:
            assert sends == []
        assert all(send.sequence.is_sequence for send in sends)
        lead = outcome.lead
