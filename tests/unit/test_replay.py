"""`nurture replay` over a journey file: timelines, JSON lines and malformed input."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nurture.tools.cli import main
from tests.support import ROOT

SAMPLE = ROOT / "events" / "journeys" / "sample.jsonl"


def _json_lines(capsys, *args: str) -> list[dict[str, Any]]:
    assert main(["replay", str(SAMPLE), "--json", *args]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_replay_prints_each_leads_journey_as_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    records = _json_lines(capsys, "--until", "2026-06-30")
    assert {r["kind"] for r in records} == {"transition", "send", "alert"}
    assert [r["at"] for r in records] == sorted(r["at"] for r in records)
    ada = [r for r in records if r["lead"] == "u-ada" and r["kind"] == "transition"]
    assert [(r["from"], r["to"]) for r in ada] == [
        (None, "awareness"),
        ("awareness", "consideration"),
        ("consideration", "decision"),
        ("decision", "sales_engaged"),
    ]
    bo = [r["to"] for r in records if r["lead"] == "u-bo" and r["kind"] == "transition"]
    assert bo == ["awareness", "re_engagement", "suppressed"]
    sends = [r for r in records if r["kind"] == "send"]
    assert all({"sequence", "content_id", "step"} <= r.keys() for r in sends)


def test_the_clock_stops_at_until(capsys: pytest.CaptureFixture[str]) -> None:
    early = _json_lines(capsys, "--until", "2026-02-01")
    assert max(r["at"] for r in early) < "2026-02-01T00:00:01"
    assert not [r for r in early if r.get("to") in ("suppressed", "sales_engaged")]


def test_a_competitor_gets_no_email_and_no_alert(capsys: pytest.CaptureFixture[str]) -> None:
    dee = [r for r in _json_lines(capsys, "--until", "2026-06-30") if r["lead"] == "u-dee"]
    assert [(r["kind"], r.get("to")) for r in dee] == [("transition", "excluded")]


def test_malformed_lines_are_reported_with_their_number_and_the_rest_still_runs(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    journey = tmp_path / "journey.jsonl"
    good = SAMPLE.read_text().splitlines()[:3]
    journey.write_text(
        "\n".join([good[0], "{not json", good[1], '{"type": "page", "timestamp": "2026-01-05"}', good[2]]) + "\n"
    )
    assert main(["replay", str(journey), "--json"]) == 0
    captured = capsys.readouterr()
    assert f"{journey}:2: skipped: not valid JSON" in captured.err
    assert f"{journey}:4: skipped: messageId: Field required" in captured.err
    assert "2 malformed lines skipped" in captured.err
    assert json.loads(captured.out.splitlines()[0])["to"] == "awareness"


def test_the_human_timeline_says_why_each_lead_moved(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(SAMPLE), "--until", "2026-06-30"]) == 0
    out = capsys.readouterr().out
    assert "u-bo  now suppressed" in out
    assert "awareness -> re_engagement: 90 days in awareness" in out
    assert "ALERT  sales: Demo request" in out


def test_a_bad_until_date_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["replay", str(SAMPLE), "--until", "next tuesday"])
    assert exited.value.code == 2
    assert "is not an ISO date" in capsys.readouterr().err
