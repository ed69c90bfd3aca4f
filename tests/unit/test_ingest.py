"""Segment intake rules, without HTTP: clock-skew correction, per-message validation, batch context and ids."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from nurture.domain.journey import Lead
from nurture.domain.messages import TrackMessage, segment_message
from nurture.domain.system_events import SYSTEM_EVENTS
from nurture.pipeline.ingest import MAX_BATCH_MESSAGES, MAX_DEPTH, Intake, Problem, parse_body, read_messages
from nurture.pipeline.ports import StoredEvent
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
    assert intake.problems[0].problem.endswith(f"got {fields[field]!r}")  # the value the client must fix
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


# --- what is refused (issue 7) ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "field"),
    [
        pytest.param({"timestamp": "9999-12-25T00:00:00Z"}, "timestamp", id="year-9999"),
        pytest.param({"timestamp": iso(timedelta(days=1, seconds=1))}, "timestamp", id="a-day-and-a-second-ahead"),
        pytest.param({"timestamp": "1999-12-31T23:59:59Z"}, "timestamp", id="before-2000"),
        pytest.param({"timestamp": "0001-01-01T00:00:00Z"}, "timestamp", id="year-1"),
        pytest.param(
            {"originalTimestamp": iso(), "sentAt": "2001-01-01T00:00:00Z"},
            "originalTimestamp",
            id="ahead-once-corrected",
        ),
        pytest.param(
            {"originalTimestamp": "2001-01-01T00:00:00Z", "sentAt": "2030-01-01T00:00:00Z"},
            "originalTimestamp",
            id="before-2000-once-corrected",
        ),
    ],
)
def test_a_timestamp_the_journey_cannot_compute_with_is_refused_naming_its_field(
    fields: dict[str, Any], field: str
) -> None:
    # A page view dated 9999-12-25 once poisoned its lead: the next message overflowed the calendar.
    intake = one("page", **fields)
    assert problems(intake) == [(None, field)]
    assert intake.accepted == []


@pytest.mark.parametrize(
    "timestamp",
    [iso(timedelta(days=1)), "2000-01-01T00:00:00Z", "2000-01-01T01:00:00+01:00"],
    ids=["exactly-a-day-ahead", "the-first-instant-of-2000", "the-same-instant-elsewhere"],
)
def test_a_timestamp_at_the_edge_of_the_range_is_accepted(timestamp: str) -> None:
    assert accepted_one(one("page", timestamp=timestamp))["timestamp"].year in (2000, RECEIVED.year)


def test_a_far_future_message_in_a_batch_costs_only_itself() -> None:
    intake = batch(page_item(messageId="m-0"), page_item(messageId="m-1", timestamp="9999-12-25T00:00:00Z"))
    assert problems(intake) == [(1, "timestamp")]
    assert [e.message_id for e in intake.accepted] == ["m-0"]


def nested(levels: int) -> dict[str, Any]:
    """An object holding `levels` levels of objects, itself included: nested(1) == {}."""
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def test_a_message_nested_deeper_than_the_limit_is_refused_naming_the_field() -> None:
    # The message is level 1 and `properties` level 2, so properties may hold MAX_DEPTH - 1 levels
    assert accepted_one(one("track", event="Demo Requested", properties=nested(MAX_DEPTH - 1)))
    intake = one("track", event="Demo Requested", properties=nested(MAX_DEPTH))
    assert [(p.field, p.problem) for p in intake.problems] == [("properties", "is nested deeper than 32 levels")]
    assert intake.accepted == []


def test_a_deep_message_in_a_batch_costs_only_itself_wherever_the_depth_is() -> None:
    deep = nested(256)
    intake = batch(
        page_item(messageId="m-0"),
        page_item(properties=deep),
        page_item(context=deep),
        {"type": "identify", "userId": "u-ada", "traits": deep},
        page_item(extra=[deep]),
        page_item(messageId="m-5"),
    )
    assert problems(intake) == [(1, "properties"), (2, "context"), (3, "traits"), (4, "extra")]
    assert [e.message_id for e in intake.accepted] == ["m-0", "m-5"]


def test_a_deep_batch_context_is_a_problem_of_every_message_it_is_merged_into() -> None:
    intake = batch(page_item(), page_item(), context=nested(MAX_DEPTH))
    assert problems(intake) == [(0, "context"), (1, "context")]


def test_a_body_too_deep_to_parse_is_a_problem_with_the_body_not_a_crash() -> None:
    for raw in (b"[" * 100_000, b'{"batch": ' + b"[" * 200_000):
        problem = parse_body(raw)
        assert isinstance(problem, Problem)
        assert (problem.field, problem.problem) == ("body", "is nested deeper than 32 levels")


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        pytest.param(b'{"userId": "u-ada", "properties": {"price": NaN}}', "properties.price", id="NaN"),
        pytest.param(b'{"userId": "u-ada", "properties": {"price": 1e999}}', "properties.price", id="1e999"),
        pytest.param(b'{"userId": "u-ada", "properties": {"items": [1, -Infinity]}}', "properties.items.1", id="-Inf"),
        pytest.param(b'{"userId": "u-ada", "context": {"screen": {"density": Infinity}}}', "context.screen.density"),
        pytest.param(b'{"userId": "u-ada", "type": "identify", "traits": {"score": NaN}}', "traits.score", id="trait"),
    ],
)
def test_a_number_that_is_not_finite_is_refused_naming_where_it_is(raw: bytes, field: str) -> None:
    # Python's json reads NaN, Infinity and 1e999; stored, they came back as null
    body = parse_body(raw)
    intake = read_messages(body, body.get("type", "page"), RECEIVED)
    assert problems(intake) == [(None, field)]
    assert "finite" in intake.problems[0].problem


def test_a_non_finite_number_in_a_batch_costs_only_its_message() -> None:
    body = parse_body(
        b'{"batch": [{"type": "page", "userId": "u", "messageId": "m-0"},'
        b' {"type": "page", "userId": "u", "properties": {"x": NaN}}]}'
    )
    intake = read_messages(body, None, RECEIVED)
    assert problems(intake) == [(1, "properties.x")]
    assert [e.message_id for e in intake.accepted] == ["m-0"]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32", "latin-1"])
def test_a_body_that_is_not_utf_8_is_refused(encoding: str) -> None:
    problem = parse_body(json.dumps({"userId": "u-ada", "event": "Démo"}, ensure_ascii=False).encode(encoding))
    assert isinstance(problem, Problem)
    assert problem.field == "body"


def test_a_utf_8_body_with_a_byte_order_mark_is_still_utf_8() -> None:
    body = parse_body("\ufeff".encode() + json.dumps({"userId": "u-ada", "event": "Démo"}).encode())
    assert body == {"userId": "u-ada", "event": "Démo"}


@pytest.mark.parametrize("event", SYSTEM_EVENTS)
def test_the_engines_own_events_are_refused_on_the_public_api(event: str) -> None:
    intake = one("track", event=event)
    assert problems(intake) == [(None, "event")]
    assert event in intake.problems[0].problem
    assert intake.accepted == []


@pytest.mark.parametrize("event", ["email opened", " Unsubscribed ", "EMAIL BOUNCED"])
def test_a_system_event_is_refused_whatever_its_case(event: str) -> None:
    assert problems(one("track", event=event)) == [(None, "event")]


def test_a_system_event_in_a_batch_costs_only_itself_and_a_websites_demo_booked_is_kept() -> None:
    intake = batch(
        {"type": "track", "userId": "u-ada", "event": "Demo Booked", "messageId": "m-0"},
        {"type": "track", "userId": "u-ada", "event": "Email Complained"},
        {"type": "track", "userId": "u-ada", "event": "Email Link Clicked"},
        page_item(messageId="m-3", name="Unsubscribed"),  # a page may be named anything
    )
    assert problems(intake) == [(1, "event"), (2, "event")]
    assert [e.message_id for e in intake.accepted] == ["m-0", "m-3"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        pytest.param({"userId": "u\x00ada"}, "userId", id="nul-in-user-id"),
        pytest.param({"anonymousId": "a-1\n"}, "anonymousId", id="newline-in-anonymous-id"),
        pytest.param({"messageId": "m\x1b[31m"}, "messageId", id="escape-in-message-id"),
        pytest.param({"event": "Demo\x00Requested"}, "event", id="nul-in-event"),
        pytest.param({"event": "Demo\tRequested"}, "event", id="tab-in-event"),
        pytest.param({"event": "Demo\x85Requested"}, "event", id="c1-in-event"),
    ],
)
def test_control_characters_in_ids_and_event_names_are_refused(fields: dict[str, Any], field: str) -> None:
    intake = one("track", **{"event": "Demo Requested", **fields})
    assert problems(intake) == [(None, field)]


def test_the_message_model_still_takes_system_events_from_the_engines_own_sources() -> None:
    # SES feedback, the unsubscribe link, `nurture replay` and the tests feed them without the ingest API
    for event in SYSTEM_EVENTS:
        parsed = segment_message.validate_python(
            {"type": "track", "userId": "u-ada", "messageId": "m", "event": event, "timestamp": iso()}
        )
        assert isinstance(parsed, TrackMessage)
        assert parsed.event == event


def identified(**traits: Any) -> Intake:
    return one("identify", traits=traits)


@pytest.mark.parametrize(
    ("traits", "kept"),
    [
        pytest.param({"email": " Ada@NorthWind.Example "}, {"email": "ada@northwind.example"}, id="email-any-case"),
        pytest.param({"email": "o'brien+nurture@northwind.example"}, {"email": "o'brien+nurture@northwind.example"}),
        pytest.param({"country": "de"}, {"country": "DE"}, id="country-lower-case"),
        pytest.param({"country": "XK"}, {"country": "XK"}, id="kosovo"),
        pytest.param({"timezone": "europe/berlin"}, {"timezone": "Europe/Berlin"}, id="zone-any-case"),
        pytest.param({"timezone": "UTC"}, {"timezone": "UTC"}, id="utc"),
    ],
)
def test_good_traits_are_kept_in_their_canonical_spelling(traits: dict[str, Any], kept: dict[str, Any]) -> None:
    stored = accepted_one(identified(**traits))["traits"]
    assert {name: stored[name] for name in kept} == kept


@pytest.mark.parametrize(
    ("traits", "field"),
    [
        pytest.param({"country": "XX"}, "traits.country", id="XX"),
        pytest.param({"country": "UK"}, "traits.country", id="UK-is-GB"),
        pytest.param({"timezone": "localtime"}, "traits.timezone", id="localtime"),
        pytest.param({"timezone": "Factory"}, "traits.timezone", id="Factory"),
        pytest.param({"timezone": "../../etc/passwd"}, "traits.timezone", id="a-path"),
        pytest.param({"email": "a,b@c.example"}, "traits.email", id="two-addresses"),
        pytest.param({"email": "nul\x00x@c.example"}, "traits.email", id="nul"),
        pytest.param({"email": '"e"<x@y.example>'}, "traits.email", id="display-name"),
        pytest.param({"email": "ada@northwind"}, "traits.email", id="no-dot"),
        pytest.param({"email": "ada@northwind.test"}, "traits.email", id="special-use-domain"),
        pytest.param({"email": "ada@@northwind.example"}, "traits.email", id="two-at-signs"),
    ],
)
def test_loose_traits_are_refused_naming_the_field(traits: dict[str, Any], field: str) -> None:
    intake = identified(**traits)
    assert problems(intake) == [(None, field)]


def test_what_was_stored_under_the_looser_rules_stays_readable() -> None:
    # A lead or an event stored before the rules were tightened is read back (by the scorer, the dispatcher,
    # an identity merge) without the client rules: were it refused, its lead would be stuck for good.
    traits = {"email": "a,b@c.example", "country": "XX", "timezone": "Factory"}
    lead = Lead.model_validate_json(json.dumps({"lead_id": "l-1", "traits": traits}))
    assert (lead.traits.email, lead.traits.country, lead.traits.timezone) == ("a,b@c.example", "XX", "Factory")
    message = {"type": "track", "userId": "u\x00ada", "messageId": "m", "event": "Demo\tRequested", "timestamp": iso()}
    stored = StoredEvent.model_validate({"profile_id": "u#u\x00ada", "message": message, "received_at": RECEIVED})
    assert stored.message.user_id == "u\x00ada"
    # while a client sending the same is refused
    intake = one("identify", traits=traits)
    assert problems(intake) == [(None, "traits.email"), (None, "traits.country"), (None, "traits.timezone")]
    assert problems(read_messages(message, "track", RECEIVED)) == [(None, "userId"), (None, "event")]
