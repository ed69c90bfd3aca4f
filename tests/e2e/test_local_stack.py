"""The local stack over real HTTP: a buyer's journey, duplicates and bad input, as a client sees them."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.e2e.conftest import START, Local

pytestmark = pytest.mark.e2e
EMAIL = "ada@northwind.example"


def _gaps(mails: list[dict[str, Any]]) -> set[timedelta]:
    times = [datetime.fromisoformat(m["sent_at"]) for m in mails]
    return {b - a for a, b in itertools.pairwise(times)}


def test_a_buyer_moves_from_awareness_to_decision_with_email_at_each_cadence(local: Local) -> None:
    # Given a new lead who reads the blog
    assert (
        local.send(
            "identify",
            {
                "userId": "u-ada",
                "messageId": "e-1",
                "timestamp": START,
                "traits": {"email": EMAIL, "first_name": "Ada", "company_size": 240, "seniority": "vp"},
            },
        )[0]
        == 200
    )
    assert (
        local.send(
            "page",
            {
                "userId": "u-ada",
                "messageId": "e-2",
                "timestamp": START,
                "properties": {"path": "/blog/why-drips-stall"},
            },
        )[0]
        == 200
    )
    local.drain()
    assert local.lead(EMAIL)["stage"] == "awareness"
    # When four weeks pass: two more awareness emails, two weeks apart
    now = local.advance(28)
    awareness = local.outbox(EMAIL)
    assert [m["sequence"] for m in awareness] == ["awareness"] * 3
    assert _gaps(awareness) == {timedelta(days=14)}
    # When she visits pricing and downloads a case study
    local.send("page", {"userId": "u-ada", "messageId": "e-3", "timestamp": now, "properties": {"path": "/pricing"}})
    local.send("track", {"userId": "u-ada", "messageId": "e-4", "timestamp": now, "event": "Case Study Downloaded"})
    local.drain()
    lead = local.lead(EMAIL)
    assert lead["stage"] == "consideration"
    assert [c["label"] for c in lead["intent_explained"][:2]] == ["Pricing page visit", "Case study download"]
    # Then consideration emails follow weekly (the first a day later: never two emails within 20 hours)
    now = local.advance(15)
    consideration = [m for m in local.outbox(EMAIL) if m["sequence"] == "consideration"]
    assert len(consideration) == 3
    assert _gaps(consideration) == {timedelta(days=7)}
    # When she requests a demo: decision at once, sales alerted
    local.send("track", {"userId": "u-ada", "messageId": "e-5", "timestamp": now, "event": "Demo Requested"})
    local.drain()
    lead = local.lead(EMAIL)
    assert lead["stage"] == "decision"
    alerts = [a for a in local.call("GET", "/_local/alerts")[1] if a["lead_id"] == lead["lead_id"]]
    assert [a["reason"] for a in alerts] == ["Demo request"]
    # Then decision emails every three days, while she keeps engaging
    local.advance(1)
    local.send(
        "page",
        {"userId": "u-ada", "messageId": "e-6", "timestamp": local.drain(), "properties": {"path": "/docs/setup"}},
    )
    local.advance(8)
    decision = [m for m in local.outbox(EMAIL) if m["sequence"] == "decision"]
    assert len(decision) >= 3
    assert all(gap >= timedelta(days=3) for gap in _gaps(decision))
    assert [t["to_stage"] for t in local.lead(EMAIL)["transitions"]] == ["awareness", "consideration", "decision"]


def test_a_duplicate_message_id_is_counted_once(local: Local) -> None:
    message = {"userId": "u-dup", "messageId": "dup-1", "timestamp": local.drain(), "event": "Case Study Downloaded"}
    local.send("identify", {"userId": "u-dup", "messageId": "dup-0", "traits": {"email": "dup@northwind.example"}})
    first = local.send("track", message)
    second = local.send("track", message)
    assert first == (200, {"success": True, "accepted": 1, "duplicates": 0, "errors": []})
    assert second[1]["duplicates"] == 1
    local.drain()
    assert local.lead("dup@northwind.example")["intent"] == 20


def test_a_malformed_request_gets_a_400_naming_the_field_and_changes_nothing(local: Local) -> None:
    local.send("identify", {"userId": "u-bad", "messageId": "bad-0", "traits": {"email": "bad@northwind.example"}})
    local.drain()
    before = local.lead("bad@northwind.example")
    status, body = local.send("track", {"userId": "u-bad", "messageId": "bad-1", "properties": {"plan": "team"}})
    assert status == 400
    assert [e["field"] for e in body["errors"]] == ["event"]
    status, body = local.call("POST", "/v1/page", raw=b"{not json", headers={"x-write-key": local.write_key})
    assert status == 400
    local.drain()
    after = local.lead("bad@northwind.example")
    assert after["intent"] == before["intent"]
    assert after["transitions"] == before["transitions"]


def test_a_wrong_write_key_is_refused(local: Local) -> None:
    status, body = local.call("POST", "/v1/track", {"userId": "u", "event": "x"}, {"x-write-key": "nope"})
    assert status == 401
    assert "write key" in body["message"]


def test_the_clock_refuses_nonsense(local: Local) -> None:
    assert local.call("POST", "/_local/clock", {"advance_days": -3})[0] == 400
    assert local.call("POST", "/_local/clock", raw=b"[1, 2]")[0] == 400
