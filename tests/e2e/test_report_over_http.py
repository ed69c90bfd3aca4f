"""`nurture report` against a running `nurture local`: what happened over HTTP is what the monthly review shows."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Local, start_local
from tests.support import ROOT


@pytest.fixture(scope="module")
def stack() -> Iterator[Local]:
    with start_local() as local:
        yield local


def _report(local: Local, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nurture.tools.cli", "report", "--local", local.url, *options],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _json(local: Local, *options: str) -> dict[str, Any]:
    done = _report(local, "--json", *options)
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def test_a_month_of_buyers_shows_in_the_four_metrics(stack: Local, tmp_path: Path) -> None:
    admin = {"authorization": f"Bearer {stack.admin_token}"}
    now = stack.drain()
    for user in ("u-ann", "u-ben", "u-cat"):
        stack.send("identify", {"userId": user, "traits": {"email": f"{user}@example.org"}, "timestamp": now})
    stack.advance(10)
    for user in ("u-ann", "u-ben"):  # two MQLs
        stack.send("track", {"userId": user, "event": "Demo Requested", "messageId": f"demo-{user}"})
    stack.drain()
    ann = stack.lead("u-ann@example.org")["lead_id"]
    path = f"/v1/leads/{ann}/sales-status"
    assert stack.call("POST", path, {"status": "accepted"}, admin)[0] == 200
    assert stack.call("POST", path, {"status": "won", "amount": 24000}, admin)[0] == 200
    stack.drain()

    report = _json(stack, "--month", "2026-01")

    assert (report["mql"], report["sql"], report["mql_to_sql"]) == (2, 1, 0.5)
    assert report["won_nurtured"] == 24000  # Ann got her first awareness email before she was won
    sent = sum(email["sent"] for email in report["emails"])
    assert sent == len(stack.call("GET", "/_local/outbox")[1])  # every email SES accepted, counted once
    assert dict(report["funnel"])["new leads"] == 3

    html = tmp_path / "review.html"
    done = _report(stack, "--month", "2026-01", "--html", str(html))
    assert done.returncode == 0, done.stderr
    assert "MQL" in done.stdout
    assert html.stat().st_size > 0


def test_an_empty_month_says_so(stack: Local) -> None:
    report = _json(stack, "--month", "2025-06")
    assert report["empty"] is True
    done = _report(stack, "--month", "2025-06")
    assert done.returncode == 0
    assert "Nothing was counted in 2025-06" in done.stdout


def test_a_bad_month_or_a_stack_that_is_not_there_is_one_clear_line() -> None:
    bad = subprocess.run(
        [sys.executable, "-m", "nurture.tools.cli", "report", "--month", "2026-13"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert "is not a month such as 2026-11" in bad.stderr
    gone = subprocess.run(
        [sys.executable, "-m", "nurture.tools.cli", "report", "--local", "http://127.0.0.1:9"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert gone.returncode == 1
    assert gone.stderr.startswith("nurture report: cannot read the local stack")


@pytest.mark.parametrize("cost", ["-5", "1e300", "nan", "lots"])
def test_a_cost_that_is_not_an_amount_is_refused(cost: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "nurture.tools.cli", "report", "--aws-cost", cost],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "--aws-cost" in done.stderr
