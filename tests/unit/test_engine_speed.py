"""What the engine's speed levers rely on (issue 12): the figures themselves are in tests/bench/replay.py."""

from __future__ import annotations

import gc
from datetime import UTC, datetime, timedelta

import pytest

from nurture.domain.messages import Message, segment_message
from nurture.domain.scoring import Tallies, below_since, intent_score
from nurture.tools.engine import Engine, collector_paused
from nurture.tools.population import population
from tests.support import starter

START = datetime(2026, 1, 5, tzinfo=UTC)


def _messages(leads: int, days: int) -> list[Message]:
    return [segment_message.validate_python(m) for m in population(leads, START, days=days)]


def test_a_replay_makes_no_reference_cycles_so_pausing_the_collector_frees_everything() -> None:
    messages = _messages(60, 120)
    programme = starter()
    gc.collect()
    gc.disable()
    try:
        Engine(programme).run(messages, until=START + timedelta(days=120))
        found = gc.collect()
    finally:
        gc.enable()
    assert found == 0, f"the engine left {found} objects in reference cycles: only the paused collector frees them"


def test_the_collector_is_running_again_after_a_run_even_one_that_failed() -> None:
    assert gc.isenabled()
    paused: list[bool] = []

    def failing_run() -> None:
        with collector_paused():
            paused.append(not gc.isenabled())
            raise RuntimeError("a message the engine could not apply")

    with pytest.raises(RuntimeError):
        failing_run()
    assert paused == [True]
    assert gc.isenabled()


def test_scores_read_from_remembered_tallies_match_a_fresh_reading() -> None:
    """The score and the consideration spell are remembered per tallies object; a copy with one more message must
    not be answered from the original's entry."""
    programme = starter()
    day = START.date()
    tallies, _ = Tallies().add(["pricing_page_visit"], day, programme)
    now = START + timedelta(hours=12)
    first = intent_score(tallies, programme, now)
    more, changed = tallies.add(["pricing_page_visit"], day, programme)
    assert changed
    assert intent_score(more, programme, now) > first
    assert intent_score(tallies, programme, now) == first
    fresh = Tallies.model_validate(tallies.model_dump())
    assert fresh is not tallies
    spell = below_since(tallies, programme, programme.thresholds.consideration, START)
    assert below_since(fresh, programme, programme.thresholds.consideration, START) == spell
    assert below_since(more, programme, programme.thresholds.consideration, START) >= spell
