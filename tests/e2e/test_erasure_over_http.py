"""Erasure over real HTTP against `nurture local --clock manual`: after `DELETE /v1/leads/{id}` or `nurture forget`,
no table of the stack (every table moto holds, read item by item) has the person's email, ids or lead id."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from nurture.domain.programme import Stage
from nurture.pipeline.erase import send_key
from tests.e2e.conftest import Local, start_local
from tests.support import ROOT

pytestmark = pytest.mark.e2e
ERIN = "erin@fabrikam.example"
FINN = "finn@tailspin.example"


@pytest.fixture(scope="module")
def state_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where this module's `nurture local` says where it is, so `nurture forget` finds this one and no other."""
    return tmp_path_factory.mktemp("local") / "nurture-local.json"


@pytest.fixture(scope="module")
def local(state_file: Path) -> Iterator[Local]:
    with start_local(environment={"NURTURE_LOCAL_STATE": str(state_file)}) as started:
        yield started


@pytest.fixture(scope="module")
def dynamodb(local: Local, state_file: Path) -> Any:
    """The local stack's DynamoDB (moto), as `nurture local` announced it."""
    state = json.loads(state_file.read_text())
    return boto3.client(
        "dynamodb",
        endpoint_url=state["endpoint_url"],
        region_name=state["region"],
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def every_item(dynamodb: Any) -> dict[str, list[str]]:
    """Every item of every table, as text, by table: whatever a feature keeps, wherever it keeps it."""
    found: dict[str, list[str]] = {}
    for table in dynamodb.list_tables()["TableNames"]:
        items = found.setdefault(table, [])
        for page in dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
            items += [json.dumps(item, ensure_ascii=False) for item in page["Items"]]
    return found


def tables_holding(dynamodb: Any, *needles: str) -> dict[str, int]:
    """How many items of each table hold any of `needles` (case-insensitively)."""
    wanted = [needle.lower() for needle in needles]
    holding = {
        table: sum(any(needle in item.lower() for needle in wanted) for item in items)
        for table, items in every_item(dynamodb).items()
    }
    return {table: n for table, n in holding.items() if n}


def admin(local: Local, method: str, path: str) -> tuple[int, Any]:
    return local.call(method, path, headers={"authorization": f"Bearer {local.admin_token}"})


def erin_gets_her_first_email(local: Local) -> dict[str, Any]:
    """Erin reads the pricing page and a blog post anonymously, identifies herself and asks for a demo (sales is
    alerted and an owner assigned), and a day later gets an email."""
    now = local.drain()
    for n, path in enumerate(("/pricing", "/blog/why-drips-stall")):
        page = {"anonymousId": "a-erin", "messageId": f"erin-page-{n}", "timestamp": now, "properties": {"path": path}}
        assert local.send("page", page)[0] == 200
    identify = {
        "userId": "u-erin",
        "anonymousId": "a-erin",
        "messageId": "erin-identify",
        "timestamp": now,
        "traits": {"email": ERIN, "first_name": "Erin", "company": "Fabrikam"},
    }
    assert local.send("identify", identify)[0] == 200
    demo = {"userId": "u-erin", "messageId": "erin-demo", "timestamp": now, "event": "Demo Requested"}
    assert local.send("track", demo)[0] == 200
    local.advance(1)
    assert len(local.outbox(ERIN)) == 1
    return local.lead(ERIN)


def test_erasing_a_lead_over_the_api_leaves_no_trace_in_any_table(local: Local, dynamodb: Any) -> None:
    # Given Erin, her browsing and identify stored, scored, and her first email sent (and guarded against a resend)
    lead = erin_gets_her_first_email(local)
    lead_id = str(lead["lead_id"])
    [sent] = lead["sends"]
    guard = send_key(lead_id, Stage(sent["sequence"]), sent["content_id"])
    assert set(tables_holding(dynamodb, ERIN, lead_id, "u-erin", "a-erin")) >= {"nurture-events", "nurture-leads"}
    assert tables_holding(dynamodb, guard) == {"nurture-idempotency": 1}

    # When an admin erases her
    status, body = admin(local, "DELETE", f"/v1/leads/{lead_id}")

    # Then the answer counts what went, and no item of any table holds her email, ids, lead id or email's guard
    assert status == 200, body
    assert body["leads"] == 1
    assert body["events"] >= 4  # her page views, identify and demo request (and any email feedback stored as events)
    assert body["profiles"] == 2
    assert body["send_guards"] == 1
    local.drain()  # whatever her erasure set going (stream records of the deleted events) has run
    assert tables_holding(dynamodb, ERIN, lead_id, "u-erin", "a-erin", "Fabrikam", guard) == {}
    # And only an anonymous count of the month is left of her
    [count] = [item for item in every_item(dynamodb)["nurture-leads"] if '"ERASURES"' in item]
    assert json.loads(count)["leads"] == {"N": "1"}

    # And the admin API knows her no more, by id or email, and a second erasure finds nothing
    assert admin(local, "GET", f"/v1/leads/{lead_id}")[0] == 404
    assert admin(local, "GET", f"/v1/leads?email={ERIN}")[0] == 404
    assert admin(local, "DELETE", f"/v1/leads/{lead_id}")[0] == 404


def test_after_erasure_the_same_person_starts_a_new_lead_with_no_history(local: Local, dynamodb: Any) -> None:
    # Given Erin, erased (the previous test, or now)
    if admin(local, "GET", f"/v1/leads?email={ERIN}")[0] == 200:
        assert admin(local, "DELETE", f"/v1/leads/{local.lead(ERIN)['lead_id']}")[0] == 200
    # When she identifies again, with the same userId, anonymousId and email
    now = local.drain()
    identify = {
        "userId": "u-erin",
        "anonymousId": "a-erin",
        "messageId": "erin-again",
        "timestamp": now,
        "traits": {"email": ERIN},
    }
    assert local.send("identify", identify)[0] == 200
    local.drain()
    # Then she is a new lead, with nothing of her past: no score, no email, one transition (new lead)
    lead = local.lead(ERIN)
    assert lead["intent"] == 0
    assert lead["sends"] == []
    assert [t["from_stage"] for t in lead["transitions"]] == [None]
    assert lead["traits"].get("first_name") is None
    assert len(tables_holding(dynamodb, "erin-page-0", "erin-page-1", "erin-identify")) == 0


def test_nurture_forget_erases_by_email_and_says_so_without_the_address(
    local: Local, dynamodb: Any, state_file: Path
) -> None:
    # Given Finn, identified and sent an email
    now = local.drain()
    identify = {"userId": "u-finn", "messageId": "finn-1", "timestamp": now, "traits": {"email": FINN}}
    assert local.send("identify", identify)[0] == 200
    local.advance(1)
    lead_id = str(local.lead(FINN)["lead_id"])
    env = {**os.environ, "NURTURE_LOCAL_STATE": str(state_file)}

    def forget() -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "nurture.tools.cli", "forget", "--email", FINN.upper()]
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)

    # When an operator runs `nurture forget --email` against the running local stack
    done = forget()

    # Then it says what it erased, in counts, never the address; and nothing of Finn is left in any table
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("erased 1 lead: 1 event, 1 profile link, ")
    assert "1 send idempotency record" in done.stdout
    assert FINN not in (done.stdout + done.stderr).lower()
    assert tables_holding(dynamodb, FINN, lead_id, "u-finn") == {}
    assert admin(local, "GET", f"/v1/leads/{lead_id}")[0] == 404
    # And asked again, it fails clearly: no lead has that email
    again = forget()
    assert again.returncode == 1
    assert "no lead has that email" in again.stderr
