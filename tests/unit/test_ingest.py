"""Segment intake rules, without HTTP: clock-skew correction, per-message validation, batch context and ids."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from nurture.pipeline.ingest import MAX_BATCH_MESSAGES, Intake, read_messages
from tests.support import T0

RECEIVED = T0


def iso(delta: timedelta = timedelta(0)) -> str:
    return (RECEIVED + delta).isoformat().replace("+00:00", "Z")


def one(kind: str, **fields: Any) -> Intake:
    return read_messages({"userId": "u-ada", **fields}, kind, RECEIVED)


def accepted_one(intake: Intake) -> dict[str, Any]:
    assert intake.problems == []
    [event] = intake.accepted
    return event.message.model_dump(by_alias=True)


def batch(*items: Any, **top: Any) -> Intake:  # items as a client sends them, well-formed or not
    return read_messages({"batch": list(items), **top}, None, RECEIVED)


def page_item(**fields: Any) -> dict[str, Any]:
    return {"type": "page", "userId": "u-ada", **fields}


def problems(intake: Intake) -> list[tuple[int | None, str]]:
    return [(p.index, p.field) for p in intake.problems]


# --- timestamps -----------------------------------------------------------------------------
def test_a_clients_clock_skew_is_corrected_from_sent_at() -> None:
    # Given a device whose clock runs an hour fast, that saw the event 5 s before sending it
    fast = timedelta(hours=1)
    intake = one("page", originalTimestamp=iso(fast - timedelta(seconds=5)), sentAt=iso(fast))
    # Then the event happened 5 s before we received it, by our clock
    assert accepted_one(intake)["timestamp"] == RECEIVED - timedelta(seconds=5)


def test_timestamp_stands_for_original_timestamp_in_the_skew_correction() -> None:
    intake = one("page", timestamp=iso(timedelta(minutes=-3)), sentAt=iso(timedelta(minutes=-1)))
    assert accepted_one(intake)["timestamp"] == RECEIVED - timedelta(minutes=2)


def test_a_timestamp_without_sent_at_is_kept_as_given() -> None:
    # Given a historical import: a timestamp from last year and no sentAt
    intake = one("page", timestamp="2025-03-01T08:30:00+01:00")
    assert accepted_one(intake)["timestamp"] == RECEIVED.replace(year=2025, month=3, day=1, hour=7, minute=30)


def test_a_timestamp_without_a_time_zone_is_utc() -> None:
    intake = one("page", timestamp="2025-03-01T08:30:00")
    assert accepted_one(intake)["timestamp"] == RECEIVED.replace(year=2025, month=3, day=1, hour=8, minute=30)


def test_a_message_without_a_timestamp_happened_when_it_was_received() -> None:
    intake = one("track", event="Demo Requested")
    assert accepted_one(intake)["timestamp"] == RECEIVED
    assert intake.accepted[0].received_at == RECEIVED


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        pytest.param({"timestamp": "yesterday"}, "timestamp", id="timestamp"),
        pytest.param({"timestamp": iso(), "sentAt": "soon"}, "sentAt", id="sentAt"),
        pytest.param({"originalTimestamp": "13/01/2026", "sentAt": iso()}, "originalTimestamp", id="originalTimestamp"),
        pytest.param({"timestamp": "9999-12-31T23:59:59-12:00"}, "timestamp", id="past-the-calendar-in-utc"),
        pytest.param(
            {"timestamp": "0001-01-01T00:00:00Z", "sentAt": "9999-12-31T00:00:00Z"}, "timestamp", id="skew-out-of-range"
        ),
    ],
)
def test_an_unusable_timestamp_is_a_problem_naming_its_field(fields: dict[str, Any], field: str) -> None:
    intake = one("page", **fields)
    assert problems(intake) == [(None, field)]
    assert intake.accepted == []


def test_a_bad_timestamp_does_not_hide_the_messages_other_problems() -> None:
    intake = one("track", timestamp="yesterday")
    assert problems(intake) == [(None, "timestamp"), (None, "event")]


# --- what is kept ---------------------------------------------------------------------------
def test_the_write_key_is_never_stored_with_the_message() -> None:
    single = one("track", event="Demo Requested", writeKey="wk-secret")
    batched = batch(page_item(writeKey="wk-secret"), writeKey="wk-secret")
    kept = single.accepted + batched.accepted
    assert len(kept) == 2
    assert not [e for e in kept if "wk-secret" in e.model_dump_json()]


def test_a_missing_message_id_is_generated_and_unique() -> None:
    intake = batch(page_item(), page_item())
    ids = [e.message_id for e in intake.accepted]
    assert len(set(ids)) == 2
    assert all(ids)


def test_a_numeric_user_id_is_accepted_as_a_string() -> None:
    intake = read_messages({"type": "track", "userId": 40213, "event": "Demo Requested"}, "track", RECEIVED)
    assert accepted_one(intake)["userId"] == "40213"
    assert intake.accepted[0].profile_id == "u#40213"


def test_a_message_is_kept_under_its_user_id_when_it_has_both_ids() -> None:
    intake = one("page", anonymousId="a-7f3c")
    assert intake.accepted[0].profile_id == "u#u-ada"


# --- batches --------------------------------------------------------------------------------
def test_a_batchs_context_is_merged_into_each_message_whose_own_keys_win() -> None:
    # Given a batch-level context and a message with context of its own
    shared = {"library": {"name": "analytics-python", "version": "2.3.2"}, "ip": "203.0.113.9"}
    intake = batch(page_item(context={"ip": "198.51.100.7", "page": {"path": "/pricing"}}), page_item(), context=shared)
    # Then each message has the batch's context, and its own keys override it
    first, second = (e.message.context for e in intake.accepted)
    assert first == {"library": shared["library"], "ip": "198.51.100.7", "page": {"path": "/pricing"}}
    assert second == shared


def test_a_batchs_sent_at_corrects_messages_that_carry_none_of_their_own() -> None:
    # Given a Segment server library's batch: timestamps per message, one sentAt for the batch, clock 1 h fast
    fast = timedelta(hours=1)
    intake = batch(
        page_item(timestamp=iso(fast - timedelta(seconds=30))),
        page_item(timestamp=iso(timedelta(seconds=-10)), sentAt=iso()),
        sentAt=iso(fast),
    )
    corrected = [e.message.timestamp for e in intake.accepted]
    assert corrected == [RECEIVED - timedelta(seconds=30), RECEIVED - timedelta(seconds=10)]


def test_each_bad_message_in_a_batch_is_named_by_index_and_costs_only_itself() -> None:
    intake = batch(
        page_item(messageId="m-0"),
        "not a message",
        {"type": "screen", "userId": "u-ada"},
        {"type": "track", "userId": "u-ada"},
        page_item(messageId="m-4"),
    )
    assert problems(intake) == [(1, "message"), (2, "type"), (3, "event")]
    assert [e.message_id for e in intake.accepted] == ["m-0", "m-4"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"batch": []}, id="empty"),
        pytest.param({"batch": {"type": "page"}}, id="not-a-list"),
        pytest.param({"messages": [page_item()]}, id="missing"),
        pytest.param({"batch": [page_item()] * (MAX_BATCH_MESSAGES + 1)}, id="too-many"),
    ],
)
def test_a_batch_body_without_a_usable_batch_list_is_one_problem(body: dict[str, Any]) -> None:
    intake = read_messages(body, None, RECEIVED)
    assert problems(intake) == [(None, "batch")]
    assert intake.accepted == []


def test_a_message_must_have_the_routes_type() -> None:
    intake = read_messages({"type": "identify", "userId": "u-ada"}, "track", RECEIVED)
    assert [(p.field, p.problem) for p in intake.problems] == [("type", "must be 'track' on this route")]
