"""`nurture demo`, the README's main command: the three buyers' stories, readable, from a real process."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support import ROOT

pytestmark = pytest.mark.e2e


def test_the_demo_tells_each_buyers_story_and_nothing_else() -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "nurture.tools.cli", "demo", "--port", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    story = finished.stdout
    assert "Ada (VP Marketing, Northwind): SALES ALERT to Sam Rivera: Demo request (intent 176, fit A;" in story
    assert "Ada (VP Marketing, Northwind): decision -> sales_engaged (demo booked)" in story
    assert "Bo (analyst, Contoso): awareness -> re_engagement (90 days in awareness)" in story
    assert "Bo (analyst, Contoso): re_engagement -> suppressed (3 re-engagement emails without engagement)" in story
    assert "Cy (ops manager, Fabrikam): consideration -> opted_out (unsubscribed)" in story
    assert "Cy (ops manager, Fabrikam): opted_out" in story.split("Where everyone is now")[1]
    assert '{"level"' not in story + finished.stderr  # no handler logs drowning the story
