"""`nurture export` against a running `nurture local`: what buyers did over HTTP and what sales said comes out as a
history (JSON Lines and Parquet) the analytics SQL joins lead by lead."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nurture.tools.analytics.queries import query
from tests.e2e.conftest import Local, start_local
from tests.support import ROOT

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def state_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where this module's `nurture local` says where it is, so `nurture export` finds this one and no other."""
    return tmp_path_factory.mktemp("local") / "nurture-local.json"


@pytest.fixture(scope="module")
def local(state_file: Path) -> Iterator[Local]:
    with start_local(environment={"NURTURE_LOCAL_STATE": str(state_file)}) as started:
        yield started


def export(state_file: Path, out: Path, *options: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "nurture.tools.cli", "export", "--out", str(out), *options]
    env = {**os.environ, "NURTURE_LOCAL_STATE": str(state_file)}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_an_export_joins_anonymous_browsing_and_sales_outcomes_to_the_lead(
    local: Local, state_file: Path, tmp_path: Path, fmt: str
) -> None:
    admin = {"authorization": f"Bearer {local.admin_token}"}
    # Given Ann, who read the pricing page before she identified herself, and Ben; sales accepts Ann, rejects Ben
    now = local.drain()
    user = f"ann-{fmt}"
    page = {"anonymousId": f"anon-{fmt}", "messageId": f"p-{fmt}", "timestamp": now, "properties": {"path": "/pricing"}}
    assert local.send("page", page)[0] == 200
    identify = {
        "userId": user,
        "anonymousId": f"anon-{fmt}",
        "timestamp": now,
        "traits": {"email": f"{user}@x.example"},
    }
    assert local.send("identify", identify)[0] == 200
    ben = f"ben-{fmt}"
    assert local.send("identify", {"userId": ben, "timestamp": now, "traits": {"email": f"{ben}@x.example"}})[0] == 200
    local.advance(1)
    ann_id, ben_id = local.lead(f"{user}@x.example")["lead_id"], local.lead(f"{ben}@x.example")["lead_id"]
    assert local.call("POST", f"/v1/leads/{ann_id}/sales-status", {"status": "accepted"}, admin)[0] == 200
    rejected = {"status": "rejected", "reason": "student"}
    assert local.call("POST", f"/v1/leads/{ben_id}/sales-status", rejected, admin)[0] == 200
    local.drain()

    # When the operator exports the running stack's history
    done = export(state_file, tmp_path, "--format", fmt)

    # Then it says what it wrote and that it holds personal data, and the SQL finds Ann's anonymous pricing view
    assert done.returncode == 0, done.stderr
    assert "personal data" in done.stdout
    assert (ann_id, "page /pricing", 1) in query(tmp_path, "lead_features")[1]
    labels = {row[0]: row[2] for row in query(tmp_path, "outcomes")[1]}
    assert (labels[ann_id], labels[ben_id]) == (1, 0)
    if fmt == "jsonl":
        leads = [json.loads(line) for line in (tmp_path / "leads.jsonl").read_text().splitlines()]
        assert {"lead_id": ann_id, "user_ids": [user], "anonymous_ids": [f"anon-{fmt}"]} in leads


def test_an_export_with_no_running_stack_says_how_to_find_one(tmp_path: Path) -> None:
    done = export(tmp_path / "none.json", tmp_path / "out")
    assert done.returncode == 1
    assert "no running `nurture local` found" in done.stderr
