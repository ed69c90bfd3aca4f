"""The public HTTP API (v1) as a client sees it: real-shaped API Gateway events in, status and body out."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from nurture.adapters.dynamodb import EventTable
from nurture.api.resolver import build_app
from nurture.constants import ENV_ALLOWED_ORIGINS, ENV_LOCAL_ADMIN_TOKEN
from nurture.domain.journey import SentEmail
from nurture.domain.programme import Stage
from nurture.pipeline.leads import LeadService
from nurture.pipeline.ports import Ports, SentRecord
from nurture.runtime import clock, wiring
from nurture.runtime.clock import ManualClock, SystemClock
from nurture.runtime.settings import settings as nurture_settings
from nurture.tools.local.lambda_events import LocalContext, http_event
from tests.fakes import FakeEvents, fake_content, fake_ports
from tests.support import T0, ada, starter

WRITE_KEY = "wk-test"
ADMIN_TOKEN = "admin-token-test"
ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}
JSON = {"content-type": "application/json"}
WITH_KEY = {**JSON, "x-write-key": WRITE_KEY}


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any


def call(
    method: str,
    path: str,
    body: bytes | dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    query: str = "",
) -> Reply:
    """One request through the app exactly as API Gateway (HTTP API, payload 2.0) would deliver it."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else b""
    return deliver(http_event(method, path, query, headers or {}, raw, T0))


def deliver(event: dict[str, Any]) -> Reply:
    context = LocalContext("ingest")  # the parts of a LambdaContext that powertools reads
    answer = build_app(lambda: frozenset({WRITE_KEY})).resolve(event, context)  # type: ignore[arg-type]
    return Reply(answer["statusCode"], answer.get("headers", {}), json.loads(answer["body"] or "null"))


def track_body(**fields: Any) -> dict[str, Any]:
    return {"type": "track", "userId": "u-ada", "event": "Case Study Downloaded", **fields}


def stored(ports: Ports) -> list[dict[str, Any]]:
    assert isinstance(ports.events, FakeEvents)
    return [e.message.model_dump(by_alias=True, mode="json") for e in ports.events.items.values()]


def fields_named(reply: Reply) -> list[tuple[int | None, str]]:
    return [(e["index"], e["field"]) for e in reply.body["errors"]]


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    monkeypatch.delenv(ENV_LOCAL_ADMIN_TOKEN, raising=False)
    monkeypatch.setenv(ENV_ALLOWED_ORIGINS, "")  # deployed with no browser origins
    nurture_settings.cache_clear()
    clock.use(ManualClock(T0))
    yield
    clock.use(SystemClock())
    wiring.reset()


@pytest.fixture
def ports() -> Ports:
    ports = fake_ports()
    wiring.override(ports=ports, content=fake_content(ports))
    return ports


@pytest.fixture
def admin_token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(ENV_LOCAL_ADMIN_TOKEN, ADMIN_TOKEN)
    nurture_settings.cache_clear()
    return ADMIN_TOKEN


@pytest.fixture
def lead_id(ports: Ports) -> str:
    """Ada (tests.support.ada), her first awareness email due."""
    return ada(LeadService(ports, starter()))


# --- write keys -----------------------------------------------------------------------------
def _basic(user: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:".encode()).decode()


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        pytest.param({**JSON, "authorization": _basic(WRITE_KEY)}, track_body(), id="http-basic-user"),
        pytest.param({**JSON, "x-write-key": WRITE_KEY}, track_body(), id="x-write-key-header"),
        pytest.param({"content-type": "text/plain"}, track_body(writeKey=WRITE_KEY), id="sendBeacon-body"),
    ],
)
def test_a_write_key_is_accepted_each_way_segment_clients_send_it(ports, headers, body) -> None:
    # When a track message arrives with the write key
    reply = call("POST", "/v1/track", body, headers)
    # Then it is stored
    assert (reply.status, reply.body["accepted"]) == (200, 1)
    assert [m["event"] for m in stored(ports)] == ["Case Study Downloaded"]


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        pytest.param(JSON, track_body(), id="no-key"),
        pytest.param({**JSON, "x-write-key": "wk-stolen"}, track_body(), id="unknown-header"),
        pytest.param({**JSON, "authorization": _basic("wk-stolen")}, track_body(), id="unknown-basic"),
        pytest.param({**JSON, "authorization": "Basic %%%"}, track_body(), id="garbled-basic"),
        pytest.param({"content-type": "text/plain"}, track_body(writeKey="wk-stolen"), id="unknown-in-body"),
        pytest.param({**JSON, "x-write-key": "wk-tëst"}, track_body(), id="non-ascii-key"),
    ],
)
def test_a_missing_or_unknown_write_key_is_401_and_stores_nothing(ports, headers, body) -> None:
    reply = call("POST", "/v1/track", body, headers)
    assert reply.status == 401
    assert "write key" in reply.body["message"]
    assert stored(ports) == []


def test_a_batch_without_a_known_write_key_stores_none_of_its_messages(ports) -> None:
    reply = call("POST", "/v1/batch", {"batch": [track_body(), track_body()], "writeKey": "wk-stolen"}, JSON)
    assert reply.status == 401
    assert stored(ports) == []


# --- size limits ----------------------------------------------------------------------------
def _padded(body: dict[str, Any], size: int) -> bytes:
    """`body` with a property padded so the JSON is exactly `size` bytes."""
    empty = json.dumps({**body, "properties": {"pad": ""}}).encode()
    return json.dumps({**body, "properties": {"pad": "x" * (size - len(empty))}}).encode()


def test_a_message_of_exactly_32_kb_is_accepted(ports) -> None:
    reply = call("POST", "/v1/track", _padded(track_body(), 32 * 1024), WITH_KEY)
    assert reply.status == 200


def test_a_message_over_32_kb_is_413_and_stores_nothing(ports) -> None:
    reply = call("POST", "/v1/track", _padded(track_body(), 32 * 1024 + 1), WITH_KEY)
    assert reply.status == 413
    assert "32,768" in reply.body["message"]
    assert stored(ports) == []


def test_a_batch_over_500_kb_is_413_and_stores_nothing(ports) -> None:
    # Given twenty messages of 30 KB each: every one fine alone, 600 KB together
    message = json.loads(_padded(track_body(), 30 * 1024))
    batch = [{**message, "messageId": f"m-{i}"} for i in range(20)]
    # When they are sent as one batch
    reply = call("POST", "/v1/batch", {"batch": batch}, WITH_KEY)
    # Then the whole batch is refused
    assert reply.status == 413
    assert "512,000" in reply.body["message"]
    assert stored(ports) == []


def test_a_message_over_32_kb_inside_a_batch_costs_only_itself(ports) -> None:
    big = json.loads(_padded(track_body(messageId="m-big"), 33 * 1024))
    reply = call("POST", "/v1/batch", {"batch": [track_body(messageId="m-ok"), big]}, WITH_KEY)
    assert reply.status == 400
    assert fields_named(reply) == [(1, "message")]
    assert [m["messageId"] for m in stored(ports)] == ["m-ok"]


# --- bad messages ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        pytest.param("/v1/track", {"type": "track", "userId": "u-ada"}, "event", id="track-without-event"),
        pytest.param(
            "/v1/identify", {"userId": "u-ada", "traits": {"email": "ada-at-northwind"}}, "traits.email", id="bad-email"
        ),
        pytest.param(
            "/v1/identify", {"userId": "u-ada", "traits": {"country": "Germany"}}, "traits.country", id="bad-country"
        ),
        pytest.param("/v1/identify", track_body(), "type", id="track-sent-to-identify"),
        pytest.param("/v1/page", {"userId": "u-ada", "timestamp": "last tuesday"}, "timestamp", id="bad-timestamp"),
        pytest.param("/v1/page", {"userId": "u-ada", "properties": ["/pricing"]}, "properties", id="bad-properties"),
        pytest.param("/v1/page", {"userId": {"id": 7}}, "userId", id="bad-user-id"),
        pytest.param("/v1/page", {"properties": {"path": "/pricing"}}, "message", id="nobody-sent-it"),
        pytest.param("/v1/identify", {"userId": "u-ada", "traits": {"country": "XX"}}, "traits.country", id="xx"),
        pytest.param(
            "/v1/identify", {"userId": "u-ada", "traits": {"timezone": "localtime"}}, "traits.timezone", id="localtime"
        ),
        pytest.param(
            "/v1/identify", {"userId": "u-ada", "traits": {"email": "a,b@c.example"}}, "traits.email", id="comma"
        ),
        pytest.param(
            "/v1/identify", {"userId": "u-ada", "traits": {"email": "nul\x00x@c.example"}}, "traits.email", id="nul"
        ),
        pytest.param(
            "/v1/identify", {"userId": "u-ada", "traits": {"email": '"e"<x@y.example>'}}, "traits.email", id="display"
        ),
        pytest.param("/v1/page", {"userId": "u-\x00ada"}, "userId", id="nul-in-user-id"),
        pytest.param("/v1/track", track_body(event="Demo\x00Requested"), "event", id="nul-in-event"),
        pytest.param("/v1/page", {"userId": "u-ada", "timestamp": "9999-12-25T00:00:00Z"}, "timestamp", id="year-9999"),
        pytest.param("/v1/page", {"userId": "u-ada", "timestamp": "1999-12-31T00:00:00Z"}, "timestamp", id="pre-2000"),
        pytest.param("/v1/track", track_body(event="Email Opened"), "event", id="system-event"),
    ],
)
def test_a_bad_message_is_400_naming_the_field_and_stores_nothing(ports, path, body, field) -> None:
    reply = call("POST", path, body, WITH_KEY)
    assert reply.status == 400
    assert fields_named(reply) == [(None, field)]
    assert stored(ports) == []


def test_a_message_with_two_bad_fields_names_both(ports) -> None:
    reply = call("POST", "/v1/identify", {"userId": "u-ada", "traits": {"email": "nope", "country": "DEU"}}, WITH_KEY)
    assert fields_named(reply) == [(None, "traits.email"), (None, "traits.country")]


def test_a_body_that_is_not_json_is_400_in_the_same_shape_as_any_bad_message(ports) -> None:
    reply = call("POST", "/v1/track", b"{'type': 'track'", WITH_KEY)
    assert reply.status == 400
    assert reply.body["success"] is False
    assert fields_named(reply) == [(None, "body")]


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
_instants = st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat())
_fields = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["track", "page", "identify", "alias"]) | _json,
        "userId": st.text(max_size=5) | st.integers() | _json,
        "anonymousId": st.text(max_size=5) | _json,
        "messageId": st.text(max_size=5) | _json,
        "event": st.text(max_size=5) | _json,
        "timestamp": _instants | st.text(max_size=10) | _json,
        "sentAt": _instants | _json,
        "traits": st.fixed_dictionaries(
            {}, optional={"email": st.emails() | _json, "country": st.text(max_size=3), "company": _json}
        )
        | _json,
        "context": _json,
        "properties": _json,
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(["/v1/track", "/v1/page", "/v1/identify", "/v1/batch"]),
    body=_fields | st.builds(lambda items, context: {"batch": items, "context": context}, st.lists(_fields), _json),
)
@example(path="/v1/track", body=track_body(timestamp="0001-01-01T00:00:00", sentAt="9999-12-31T00:00:00"))
@example(path="/v1/page", body={"userId": "u-ada", "timestamp": "9999-12-31T23:59:59-12:00"})
def test_no_body_a_client_sends_gets_a_server_error(path: str, body: dict[str, Any]) -> None:
    ports = fake_ports()
    wiring.override(ports=ports)
    reply = call("POST", path, body, WITH_KEY)
    assert reply.status in (200, 400)
    assert len(stored(ports)) == reply.body["accepted"] - reply.body["duplicates"]


# --- batches and duplicates -----------------------------------------------------------------
def test_a_batch_with_good_and_bad_messages_stores_the_good_ones_and_names_the_bad_by_index(ports) -> None:
    # Given a batch whose second and fourth messages are bad
    batch = [
        track_body(messageId="m-1"),
        {"type": "track", "userId": "u-ada", "messageId": "m-2"},
        {"type": "page", "userId": "u-ada", "messageId": "m-3"},
        {"type": "alias", "userId": "u-ada", "messageId": "m-4"},
    ]
    # When it is sent
    reply = call("POST", "/v1/batch", {"batch": batch}, WITH_KEY)
    # Then the good ones are stored and the bad ones named by position
    assert reply.status == 400
    assert (reply.body["accepted"], reply.body["duplicates"]) == (2, 0)
    assert fields_named(reply) == [(1, "event"), (3, "type")]
    assert sorted(m["messageId"] for m in stored(ports)) == ["m-1", "m-3"]


def test_a_retried_batch_is_stored_once_and_reported_as_duplicates(ports) -> None:
    batch = {"batch": [track_body(messageId="m-1"), {"type": "page", "userId": "u-ada", "messageId": "m-2"}]}
    first = call("POST", "/v1/batch", batch, WITH_KEY)
    retry = call("POST", "/v1/batch", batch, WITH_KEY)
    assert (first.status, first.body["accepted"], first.body["duplicates"]) == (200, 2, 0)
    assert (retry.status, retry.body["accepted"], retry.body["duplicates"]) == (200, 2, 2)
    assert len(stored(ports)) == 2


def test_a_message_resent_with_the_same_message_id_is_a_duplicate(ports) -> None:
    call("POST", "/v1/track", track_body(messageId="m-1"), WITH_KEY)
    again = call("POST", "/v1/track", track_body(messageId="m-1", event="Something Else"), WITH_KEY)
    assert (again.status, again.body["duplicates"]) == (200, 1)
    assert [m["event"] for m in stored(ports)] == ["Case Study Downloaded"]


# --- admin routes ---------------------------------------------------------------------------
def test_an_admin_sees_a_leads_stage_scores_with_reasons_transitions_and_sends(admin_token, lead_id) -> None:
    reply = call("GET", f"/v1/leads/{lead_id}", headers=ADMIN)
    assert reply.status == 200
    view = reply.body
    assert (view["lead_id"], view["email"], view["stage"]) == (lead_id, "ada@northwind.example", "awareness")
    assert view["intent"] == 30.0
    assert [(c["rule"], c["points"]) for c in view["intent_explained"]] == [("pricing_page_visit", 30)]
    assert (view["fit"], view["fit_explained"]) == (45, [["company size 240", 20], ["seniority vp", 25]])
    assert [(t["from_stage"], t["to_stage"]) for t in view["transitions"]] == [(None, "awareness")]
    assert [s["content_id"] for s in view["sends"]] == ["awareness-01-why-drips-stall"]


def test_an_admin_finds_a_lead_by_email_whatever_its_case(admin_token, lead_id) -> None:
    reply = call("GET", "/v1/leads", headers=ADMIN, query="email=Ada%40Northwind.example")
    assert (reply.status, reply.body["lead_id"]) == (200, lead_id)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-credential"),
        pytest.param({"authorization": "Bearer not-the-token"}, id="wrong-token"),
        pytest.param({"authorization": "Bearer tökén"}, id="non-ascii-token"),
        pytest.param({"authorization": _basic(WRITE_KEY)}, id="a-write-key"),
    ],
)
def test_admin_routes_are_401_without_the_admin_token(admin_token, lead_id, headers) -> None:
    by_id = call("GET", f"/v1/leads/{lead_id}", headers=headers)
    by_email = call("GET", "/v1/leads", headers=headers, query="email=ada%40northwind.example")
    assert (by_id.status, by_email.status) == (401, 401)
    assert "lead_id" not in by_id.body
    assert "lead_id" not in by_email.body


@pytest.mark.parametrize(
    ("path", "query"),
    [
        pytest.param("/v1/leads/0a1b2c3d", "", id="unknown-id"),
        pytest.param("/v1/leads", "email=nobody%40northwind.example", id="unknown-email"),
    ],
)
def test_an_unknown_lead_is_404(admin_token, lead_id, path, query) -> None:
    reply = call("GET", path, headers=ADMIN, query=query)
    assert reply.status == 404
    assert reply.body["message"].startswith("no lead with that")


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        pytest.param("/v1/leads", "email=a", "email", id="email-too-short"),
        pytest.param("/v1/leads", "email=" + "a" * 250 + "%40x.io", "email", id="email-too-long"),
        pytest.param("/v1/leads", "", "email", id="email-missing"),
        pytest.param("/v1/leads/not%20an%20id", "", "lead_id", id="lead-id-with-spaces"),
    ],
)
def test_a_bad_admin_query_is_400_naming_the_parameter(admin_token, path, query, field) -> None:
    reply = call("GET", path, headers=ADMIN, query=query)
    assert reply.status == 400
    assert [e["field"] for e in reply.body["errors"]] == [field]


def _with_iam(event: dict[str, Any]) -> dict[str, Any]:
    event["requestContext"]["authorizer"] = {
        "iam": {"accessKey": "AKIA-TEST", "accountId": "123456789012", "userArn": "arn:aws:iam::123456789012:user/ops"}
    }
    return event


def test_without_an_admin_token_configured_admin_routes_need_iam_authorisation(lead_id) -> None:
    # Given no admin token in the environment (as in AWS)
    unsigned = http_event("GET", f"/v1/leads/{lead_id}", "", ADMIN, b"", T0)
    signed = _with_iam(http_event("GET", f"/v1/leads/{lead_id}", "", {}, b"", T0))
    # Then a bearer token is not enough, and an IAM-authorised request gets through
    assert deliver(unsigned).status == 401
    assert deliver(signed).status == 200


def test_an_empty_admin_token_does_not_open_the_admin_routes(monkeypatch, lead_id) -> None:
    monkeypatch.setenv(ENV_LOCAL_ADMIN_TOKEN, "")
    nurture_settings.cache_clear()
    assert call("GET", f"/v1/leads/{lead_id}", headers={"authorization": "Bearer "}).status == 401


def test_an_admin_sees_whether_each_email_was_sent_unconfirmed_or_not_sent(admin_token, ports, lead_id) -> None:
    # Given Ada with three emails decided: SES accepted the first, its answer to the second was lost, and the
    # third has no send record (still queued, or lost in a crash mid-send)
    first, second, third = (
        SentEmail(sequence=Stage.AWARENESS, content_id=content_id, at=T0 + timedelta(days=14 * n))
        for n, content_id in enumerate(
            ("awareness-01-why-drips-stall", "awareness-02-three-buyer-signals", "awareness-03-cost-of-slow-follow-up")
        )
    )
    stored = ports.leads.get(lead_id)
    assert stored is not None
    ports.leads.save(
        dataclasses.replace(stored, lead=stored.lead.model_copy(update={"sent": (first, second, third)})),
        stored.version,
    )
    for email, provider_id, variant in ((first, "ses-0001", 1), (second, "", 0)):
        ports.leads.record_send(
            SentRecord(
                lead_id=lead_id,
                sequence=email.sequence,
                content_id=email.content_id,
                subject="a subject",
                sent_at=email.at + timedelta(minutes=1),
                provider_id=provider_id,
                variant=variant,
            )
        )
    # and another lead's record of the third email, which says nothing about Ada's
    ports.leads.record_send(
        SentRecord(
            lead_id="someone-else",
            sequence=third.sequence,
            content_id=third.content_id,
            subject="a subject",
            sent_at=third.at,
            provider_id="ses-0002",
        )
    )

    # When an admin looks at her, by id and by email
    by_id = call("GET", f"/v1/leads/{lead_id}", headers=ADMIN)
    by_email = call("GET", "/v1/leads", headers=ADMIN, query="email=ada%40northwind.example")

    # Then each email says what became of it, beside the fields the view always had
    expected = [
        {
            "sequence": "awareness",
            "content_id": "awareness-01-why-drips-stall",
            "at": "2026-01-05T10:00:00Z",
            "delivery": "sent",
            "sent_at": "2026-01-05T10:01:00Z",
            "provider_id": "ses-0001",
            "variant": 1,  # which subject line of its A/B test (the second)
        },
        {
            "sequence": "awareness",
            "content_id": "awareness-02-three-buyer-signals",
            "at": "2026-01-19T10:00:00Z",
            "delivery": "unconfirmed",
            "sent_at": "2026-01-19T10:01:00Z",
            "provider_id": None,
            "variant": 0,
        },
        {
            "sequence": "awareness",
            "content_id": "awareness-03-cost-of-slow-follow-up",
            "at": "2026-02-02T10:00:00Z",
            "delivery": "not_sent",
            "sent_at": None,
            "provider_id": None,
            "variant": None,
        },
    ]
    assert (by_id.status, by_email.status) == (200, 200)
    assert by_id.body["sends"] == expected
    assert by_email.body["sends"] == expected


# --- CORS -----------------------------------------------------------------------------------
@pytest.fixture
def origins(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    configured = ["https://www.northstar.example", "https://app.northstar.example"]
    monkeypatch.setenv(ENV_ALLOWED_ORIGINS, ", ".join(configured))
    nurture_settings.cache_clear()
    return configured


def _preflight(origin: str) -> Reply:
    headers = {
        "origin": origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type",
    }
    return call("OPTIONS", "/v1/track", headers=headers)


@pytest.mark.parametrize("which", [0, 1])
def test_a_preflight_from_a_configured_origin_is_allowed(ports, origins, which: int) -> None:
    reply = _preflight(origins[which])
    assert reply.headers.get("Access-Control-Allow-Origin") == origins[which]


def test_a_preflight_from_any_other_origin_is_not_allowed(ports, origins) -> None:
    reply = _preflight("https://evil.example")
    assert "Access-Control-Allow-Origin" not in reply.headers


def test_a_beacon_from_a_configured_origin_can_read_the_answer(ports, origins) -> None:
    reply = call(
        "POST", "/v1/track", track_body(writeKey=WRITE_KEY), {"content-type": "text/plain", "origin": origins[0]}
    )
    assert reply.status == 200
    assert reply.headers.get("Access-Control-Allow-Origin") == origins[0]


def test_a_batch_that_repeats_a_message_id_stores_it_once(ports: Ports) -> None:
    # Given a batch whose messages are stored concurrently, one of them twice
    message = {"type": "track", "userId": "u-1", "messageId": "same", "event": "Demo Requested"}
    others = [
        {"type": "page", "userId": "u-1", "messageId": f"p-{n}", "properties": {"path": "/blog/a"}} for n in range(40)
    ]
    reply = call("POST", "/v1/batch", {"batch": [message, *others, message]}, {"x-write-key": WRITE_KEY})
    # Then the repeat is stored once and counted as a duplicate
    assert reply.status == 200
    assert (reply.body["accepted"], reply.body["duplicates"]) == (42, 1)
    assert len(stored(ports)) == 41


# --- issue 7: what a public write key cannot do -------------------------------------------------
class RecordingDynamo:
    """Enough of a DynamoDB client for the real EventTable, which serialises each message as it is stored."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def put_item(self, **request: Any) -> None:
        self.items.append(request["Item"])


@pytest.fixture
def dynamo() -> RecordingDynamo:
    """The API storing through the real events adapter, as deployed (so a message it cannot serialise fails)."""
    client = RecordingDynamo()
    wiring.override(ports=dataclasses.replace(fake_ports(), events=EventTable(client, "events")))
    return client


def nested_properties(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


DEEP = track_body(properties=nested_properties(256))  # the 1.6 KB body


def test_a_message_nested_256_levels_is_400_naming_the_field_not_500(dynamo) -> None:
    assert len(json.dumps(DEEP)) < 2_000
    reply = call("POST", "/v1/track", DEEP, WITH_KEY)
    assert reply.status == 400
    assert fields_named(reply) == [(None, "properties")]
    assert dynamo.items == []


def test_a_batch_of_30_good_messages_and_a_deep_one_stores_the_30_and_names_the_deep_one(dynamo) -> None:
    good = [track_body(messageId=f"m-{n}") for n in range(30)]
    reply = call("POST", "/v1/batch", {"batch": [*good, DEEP]}, WITH_KEY)
    assert (reply.status, reply.body["accepted"]) == (400, 30)
    assert fields_named(reply) == [(30, "properties")]
    kept = [json.loads(item["message"]["S"])["messageId"] for item in dynamo.items]
    assert sorted(kept) == sorted(m["messageId"] for m in good)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(json.dumps(DEEP).encode(), id="256-levels"),
        pytest.param(b"[" * 30_000, id="too-deep-to-parse"),
        pytest.param(b'{"writeKey": "' + WRITE_KEY.encode() + b'", "properties": ' + b"[" * 30_000, id="key-inside"),
        pytest.param(json.dumps(track_body()).encode("utf-16"), id="utf-16"),
    ],
)
@pytest.mark.parametrize(("headers", "status"), [(WITH_KEY, 400), (JSON, 401)], ids=["with-key", "without-key"])
def test_a_body_that_cannot_be_stored_is_a_4xx_with_or_without_a_key(dynamo, body, headers, status) -> None:
    # The body is parsed before the key is checked (the key may be in it): parsing must not be what fails
    reply = call("POST", "/v1/track", body, headers)
    assert reply.status == status
    assert dynamo.items == []


def test_a_body_too_deep_to_parse_names_the_body(ports) -> None:
    reply = call("POST", "/v1/batch", b'{"batch": ' + b"[" * 30_000, WITH_KEY)
    assert reply.body["errors"] == [{"field": "body", "problem": "is nested deeper than 32 levels", "index": None}]


def test_a_utf_16_body_is_400_naming_the_body(ports) -> None:
    reply = call("POST", "/v1/track", json.dumps(track_body()).encode("utf-16"), WITH_KEY)
    assert (reply.status, fields_named(reply)) == (400, [(None, "body")])
    assert stored(ports) == []


def test_a_body_that_is_not_base64_is_400_not_500(ports) -> None:
    event = http_event("POST", "/v1/track", "", WITH_KEY, b"", T0)
    reply = deliver({**event, "body": "%%% not base64 %%%", "isBase64Encoded": True})
    assert (reply.status, fields_named(reply)) == (400, [(None, "body")])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param(b'{"userId": "u-ada", "event": "Paid", "properties": {"amount": NaN}}', "properties.amount"),
        pytest.param(b'{"userId": "u-ada", "event": "Paid", "properties": {"amount": 1e999}}', "properties.amount"),
    ],
    ids=["NaN", "1e999"],
)
def test_a_number_that_is_not_finite_is_400_instead_of_stored_as_null(dynamo, body, field) -> None:
    reply = call("POST", "/v1/track", body, WITH_KEY)
    assert (reply.status, fields_named(reply)) == (400, [(None, field)])
    assert dynamo.items == []


def test_a_non_finite_number_in_a_batch_costs_only_its_message(ports) -> None:
    body = (
        b'{"batch": [{"type": "page", "userId": "u-ada", "messageId": "m-0"},'
        b' {"type": "page", "userId": "u-ada", "messageId": "m-1", "context": {"x": -Infinity}}]}'
    )
    reply = call("POST", "/v1/batch", body, WITH_KEY)
    assert (reply.status, fields_named(reply)) == (400, [(1, "context.x")])
    assert [m["messageId"] for m in stored(ports)] == ["m-0"]


@pytest.mark.parametrize(
    "event",
    ["Email Delivered", "Email Opened", "Email Link Clicked", "Email Bounced", "Email Complained", "Unsubscribed"],
)
def test_the_engines_own_events_are_refused_on_the_write_key_naming_the_event(ports, event) -> None:
    reply = call("POST", "/v1/track", track_body(event=event), WITH_KEY)
    assert (reply.status, fields_named(reply)) == (400, [(None, "event")])
    assert event in reply.body["errors"][0]["problem"]
    assert stored(ports) == []


def test_in_a_batch_each_system_event_is_refused_and_a_websites_demo_booked_is_stored(ports) -> None:
    batch = [
        track_body(messageId="m-0", event="Demo Booked"),
        track_body(messageId="m-1", event="Unsubscribed"),
        track_body(messageId="m-2", event="Email Bounced"),
        track_body(messageId="m-3"),
    ]
    reply = call("POST", "/v1/batch", {"batch": batch}, WITH_KEY)
    assert (reply.status, reply.body["accepted"]) == (400, 2)
    assert fields_named(reply) == [(1, "event"), (2, "event")]
    assert sorted(m["messageId"] for m in stored(ports)) == ["m-0", "m-3"]


def test_a_page_view_dated_9999_is_refused_and_the_rest_of_its_batch_stored(ports) -> None:
    batch = [{"type": "page", "userId": "u-ada", "messageId": "m-0"}, track_body(timestamp="9999-12-25T00:00:00Z")]
    reply = call("POST", "/v1/batch", {"batch": batch}, WITH_KEY)
    assert fields_named(reply) == [(1, "timestamp")]
    assert [m["messageId"] for m in stored(ports)] == ["m-0"]


def _deep_text(levels: int, opener: str) -> bytes:
    closer = {"[": "]", '{"a":': "}"}[opener]
    return (
        '{"userId": "u", "event": "E", "properties": {"x": ' + opener * levels + "1" + closer * levels + "}}"
    ).encode()


_hostile = (
    st.binary(max_size=64)
    | st.builds(_deep_text, st.integers(1, 5_000), st.sampled_from(["[", '{"a":']))
    | st.builds(lambda n: b"[" * n, st.integers(1, 40_000))
    | st.sampled_from([b"NaN", b"Infinity", b"-1e999", b"1e999", b'"\\ud800"', b"\xff\xfe"]).map(
        lambda number: b'{"userId": "u", "event": "E", "properties": {"x": ' + number + b"}}"
    )
    | st.builds(
        lambda event, at: json.dumps({"userId": "u", "event": event, "timestamp": at}).encode(),
        st.sampled_from(["Unsubscribed", "Email Opened", "Demo Booked", "E\x00"]),
        st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat()),
    )
    | st.builds(lambda text, codec: text.encode(codec), st.text(max_size=30), st.sampled_from(["utf-16", "utf-32"]))
)


@settings(max_examples=120, deadline=None)
@given(
    path=st.sampled_from(["/v1/track", "/v1/page", "/v1/identify", "/v1/batch"]),
    body=_hostile,
    batched=st.booleans(),
    key=st.booleans(),
)
def test_no_body_with_or_without_a_key_gets_a_server_error(path: str, body: bytes, batched: bool, key: bool) -> None:
    client = RecordingDynamo()
    wiring.override(ports=dataclasses.replace(fake_ports(), events=EventTable(client, "events")))
    if batched:
        body = b'{"batch": [{"type": "page", "userId": "u"}, ' + body + b"]}"
    reply = call("POST", path, body, WITH_KEY if key else JSON)
    assert reply.status in ((200, 400, 413) if key else (401, 413))
    if reply.status in (200, 400):
        assert len(client.items) == reply.body["accepted"] - reply.body["duplicates"]


@pytest.mark.parametrize(
    ("body", "headers", "status", "field"),
    [
        pytest.param(
            b'{"userId": "u-ada", "event": "E", "properties": {"x": "\\ud800"}}', WITH_KEY, 400, "properties.x"
        ),
        pytest.param(b'{"userId": "u-ada", "event": "E", "properties": {"\\udfff": 1}}', WITH_KEY, 400, "properties"),
        pytest.param(b'{"userId": "\\ud800", "event": "E"}', WITH_KEY, 400, "userId"),
        pytest.param(b'{"userId": "u-ada", "event": "E", "writeKey": "\\ud800"}', JSON, 401, None),
    ],
    ids=["in-a-value", "in-a-key", "in-an-id", "as-the-write-key"],
)
def test_text_with_a_lone_surrogate_is_4xx_not_a_failure_to_store(dynamo, body, headers, status, field) -> None:
    # "\ud800" is valid JSON, but no Unicode: it cannot be written as UTF-8, so storing it failed (a 500)
    reply = call("POST", "/v1/track", body, headers)
    assert reply.status == status
    if field is not None:
        assert fields_named(reply) == [(None, field)]
    assert dynamo.items == []


# --- sales feedback: POST /v1/leads/{lead_id}/sales-status ----------------------------------------------------------
def _sales(lead: str, body: Any, headers: dict[str, str] | None = None) -> Reply:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return call("POST", f"/v1/leads/{lead}/sales-status", raw, {**JSON, **(ADMIN if headers is None else headers)})


@pytest.mark.parametrize("status", ["accepted", "engaged", "demo_booked"])
def test_sales_taking_a_lead_stops_nurture_once(ports, admin_token, lead_id, status) -> None:
    reply = _sales(lead_id, {"status": status})
    assert reply.status == 200
    assert reply.body["stage"] == "sales_engaged"
    assert reply.body["sales_status"] == status
    assert [h["status"] for h in reply.body["sales_history"]] == [status]
    changes = [e for e in ports.bus.published if getattr(e, "to_stage", None) is Stage.SALES_ENGAGED]
    assert len(changes) == 1
    # the same status again records it again, and moves nothing
    again = _sales(lead_id, {"status": status})
    assert again.status == 200
    assert len([e for e in ports.bus.published if getattr(e, "to_stage", None) is Stage.SALES_ENGAGED]) == 1


def test_a_rejected_lead_stays_in_nurture_and_every_status_is_kept_with_its_time(admin_token, lead_id) -> None:
    rejected = _sales(lead_id, {"status": "rejected", "reason": "student, no budget"})
    assert rejected.status == 200
    assert rejected.body["stage"] == "awareness"
    won = _sales(lead_id, {"status": "won", "amount": 24000})
    assert won.body["stage"] == "sales_engaged"
    assert [(h["status"], h["amount"], h["reason"]) for h in won.body["sales_history"]] == [
        ("rejected", None, "student, no budget"),
        ("won", 24000, None),
    ]
    assert all(h["at"] for h in won.body["sales_history"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"status": "maybe"}, "status", id="unknown-status"),
        pytest.param({}, "status", id="no-status"),
        pytest.param({"status": "won"}, "amount", id="won-without-amount"),
        pytest.param({"status": "opportunity", "amount": -5}, "amount", id="negative-amount"),
        pytest.param({"status": "won", "amount": "lots"}, "amount", id="amount-not-a-number"),
        pytest.param({"status": "won", "amount": True}, "amount", id="amount-a-boolean"),
        pytest.param({"status": "won", "amount": "24000"}, "amount", id="amount-a-numeric-string"),
        pytest.param({"status": "accepted", "amount": 5}, "amount", id="amount-for-a-status-without-a-deal"),
        pytest.param({"status": "rejected"}, "reason", id="rejected-without-reason"),
        pytest.param({"status": "lost", "colour": "red"}, "colour", id="unknown-field"),
        pytest.param(b"{not json", "body", id="not-json"),
        pytest.param(b"[" * 2000 + b"]" * 2000, "body", id="nested-2000-deep-within-4-kb"),
    ],
)
def test_a_bad_sales_status_is_400_naming_the_field_and_changes_nothing(admin_token, lead_id, body, field) -> None:
    reply = _sales(lead_id, body)
    assert reply.status == 400
    assert field in [e["field"] for e in reply.body["errors"]]
    view = call("GET", f"/v1/leads/{lead_id}", headers=ADMIN)
    assert (view.body["sales_status"], view.body["stage"]) == (None, "awareness")


def test_sales_status_needs_the_admin_credential_and_a_known_lead(ports, admin_token, lead_id) -> None:
    assert _sales(lead_id, {"status": "accepted"}, headers={}).status == 401
    assert _sales("no-such-lead", {"status": "accepted"}).status == 404
    assert call("GET", f"/v1/leads/{lead_id}", headers=ADMIN).body["stage"] == "awareness"


def test_a_sales_status_amount_must_be_a_json_number_and_only_with_a_deal(admin_token, lead_id) -> None:
    # Given sales answers with amounts that are not a deal's number
    answers = [
        _sales(lead_id, {"status": "won", "amount": True}),
        _sales(lead_id, {"status": "opportunity", "amount": "24000"}),
        _sales(lead_id, {"status": "accepted", "amount": 5}),
    ]
    # Then each is a 400 saying what is wrong with `amount`, and the lead view shows none of them
    assert [a.status for a in answers] == [400, 400, 400]
    problems = [e["problem"] for a in answers for e in a.body["errors"] if e["field"] == "amount"]
    assert problems == [
        "must be a JSON number, not a string or a boolean",
        "must be a JSON number, not a string or a boolean",
        "`accepted` takes no amount: only opportunity and won do",
    ]
    assert call("GET", f"/v1/leads/{lead_id}", headers=ADMIN).body["sales_history"] == []


@pytest.mark.parametrize("lead", ["bad%20id!", "a" * 65])
def test_a_malformed_lead_id_is_400_naming_it_on_sales_status_as_on_the_lead_routes(admin_token, lead) -> None:
    sales_status = _sales(lead, {"status": "accepted"})
    lead_view = call("GET", f"/v1/leads/{lead}", headers=ADMIN)
    erase = call("DELETE", f"/v1/leads/{lead}", headers=ADMIN)
    assert (sales_status.status, lead_view.status, erase.status) == (400, 400, 400)
    for reply in (sales_status, lead_view, erase):
        assert [e["field"] for e in reply.body["errors"]] == ["lead_id"]


def test_a_sales_status_body_over_4_kb_is_413_as_on_the_ingest_routes(admin_token, lead_id) -> None:
    reply = _sales(lead_id, {"status": "lost", "reason": "x" * 4200})
    assert reply.status == 413
    assert reply.body["message"].endswith("the limit is 4,096")
    assert call("GET", f"/v1/leads/{lead_id}", headers=ADMIN).body["sales_history"] == []


@pytest.mark.parametrize("body", [b"", b"null", b"[]", b'"won"'])
def test_a_sales_status_body_that_is_not_an_object_is_told_so_in_plain_words(admin_token, lead_id, body) -> None:
    reply = _sales(lead_id, body)
    assert reply.status == 400
    assert reply.body["message"] == "the body must be a JSON object"
    assert "SalesStatusBody" not in json.dumps(reply.body)
