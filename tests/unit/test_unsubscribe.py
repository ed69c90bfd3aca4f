"""One-click unsubscribe (RFC 8058) through the real resolver, and the email SES receives from the mailer.

POST with a signed token opts the lead out (an `Unsubscribed` event the scorer applies); GET changes nothing (link
scanners); a bad token is a 400 that changes nothing; no token or body is ever a 5xx.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote

import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError, ReadTimeoutError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nurture.adapters.ses import SesMailer
from nurture.api.openapi import openapi_document
from nurture.api.resolver import build_app
from nurture.constants import ENV_ALLOWED_ORIGINS, ENV_LOCAL_ADMIN_TOKEN, UNSUBSCRIBE_PATH
from nurture.domain.journey import SalesAlert, Transition
from nurture.domain.programme import Stage
from nurture.domain.tokens import Signer
from nurture.pipeline.leads import LeadService
from nurture.pipeline.ports import NotSent, Ports, StoredEvent
from nurture.runtime import clock, wiring
from nurture.runtime.clock import ManualClock, SystemClock
from nurture.runtime.settings import settings as nurture_settings
from nurture.tools.local.lambda_events import LocalContext, http_event
from tests.fakes import FakeBus, FakeEvents, fake_content, fake_ports
from tests.support import T0, ada, starter, track

ONE_CLICK = b"List-Unsubscribe=One-Click"
FORM = {"content-type": "application/x-www-form-urlencoded"}


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: str


def call(method: str, query: str = "", body: bytes = b"", headers: dict[str, str] | None = None) -> Reply:
    """One request through the app exactly as API Gateway (HTTP API, payload 2.0) would deliver it: no write key."""
    event = http_event(method, UNSUBSCRIBE_PATH, query, headers or {}, body, T0)
    answer = build_app(lambda: frozenset({"wk-test"})).resolve(event, LocalContext("ingest"))  # type: ignore[arg-type]
    raw = answer["body"] or ""
    text = base64.b64decode(raw).decode() if answer.get("isBase64Encoded") else raw
    return Reply(answer["statusCode"], {k.lower(): v for k, v in (answer.get("headers") or {}).items()}, text)


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    monkeypatch.delenv(ENV_LOCAL_ADMIN_TOKEN, raising=False)
    monkeypatch.setenv(ENV_ALLOWED_ORIGINS, "")
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
def service(ports: Ports) -> LeadService:
    return LeadService(ports, starter())


@pytest.fixture
def lead_id(service: LeadService) -> str:
    """Ada, in awareness, her first email due."""
    return ada(service)


def token_for(ports: Ports, lead_id: str, purpose: Any = "unsubscribe") -> str:
    return ports.signer.sign(purpose, lead_id, clock.now())


def stored_events(ports: Ports) -> list[StoredEvent]:
    assert isinstance(ports.events, FakeEvents)
    return list(ports.events.items.values())


def score_new_events(ports: Ports, service: LeadService) -> None:
    """What the scorer does with the events table's stream: apply the stored messages to their lead."""
    for event in stored_events(ports):
        service.receive([event.message], T0)


def opted_out_changes(ports: Ports) -> list[Transition]:
    assert isinstance(ports.bus, FakeBus)
    return [e for e in ports.bus.published if isinstance(e, Transition) and e.to_stage is Stage.OPTED_OUT]


def stage(ports: Ports, lead_id: str) -> Stage | None:
    stored = ports.leads.get(lead_id)
    assert stored is not None
    return stored.lead.stage


# --- POST: one click opts out ------------------------------------------------------------------
def test_a_one_click_post_opts_the_lead_out_once(ports: Ports, service: LeadService, lead_id: str) -> None:
    # Given Ada's unsubscribe link
    token = token_for(ports, lead_id)
    # When her mail client POSTs it as RFC 8058 says
    reply = call("POST", f"token={quote(token)}", ONE_CLICK, FORM)
    # Then she is told, in a page, and an Unsubscribed event is stored for her
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/html")
    assert "You're unsubscribed" in reply.body
    [event] = stored_events(ports)
    assert (event.message.event, event.profile_id) == ("Unsubscribed", "u#u-ada")  # type: ignore[union-attr]
    # And when the scorer applies it, she is opted out, and that is published once
    score_new_events(ports, service)
    assert stage(ports, lead_id) is Stage.OPTED_OUT
    assert len(opted_out_changes(ports)) == 1


def test_a_second_click_stores_nothing_new(ports: Ports, service: LeadService, lead_id: str) -> None:
    token = token_for(ports, lead_id)
    assert call("POST", f"token={token}", ONE_CLICK, FORM).status == 200
    assert call("POST", f"token={token}", b"", {}).status == 200
    assert len(stored_events(ports)) == 1
    score_new_events(ports, service)
    assert len(opted_out_changes(ports)) == 1


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        pytest.param(b"", {}, id="empty"),
        pytest.param(b"List-Unsubscribe=One-Click", {"content-type": "multipart/form-data"}, id="wrong-type"),
        pytest.param(b'{"hello": 1}', {"content-type": "application/json"}, id="json"),
        pytest.param(b"\xff\xfe\x00garbage", {"content-type": "application/octet-stream"}, id="binary"),
    ],
)
def test_any_body_unsubscribes(ports: Ports, lead_id: str, body: bytes, headers: dict[str, str]) -> None:
    reply = call("POST", f"token={token_for(ports, lead_id)}", body, headers)
    assert reply.status == 200
    assert [e.message.event for e in stored_events(ports)] == ["Unsubscribed"]  # type: ignore[union-attr]


def test_no_write_key_is_needed_and_none_is_asked_for(ports: Ports, lead_id: str) -> None:
    # Given a request with no Authorization, X-Write-Key or writeKey at all (the token is the credential)
    reply = call("POST", f"token={token_for(ports, lead_id)}", ONE_CLICK, FORM)
    assert reply.status == 200


# --- GET: a page, nothing changes --------------------------------------------------------------
def test_get_shows_a_button_that_posts_and_changes_nothing(ports: Ports, lead_id: str) -> None:
    token = token_for(ports, lead_id)
    # When a link scanner (or Ada) fetches the link
    reply = call("GET", f"token={quote(token)}")
    # Then it gets a page whose form POSTs one-click to the same URL, and nothing is stored
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/html")
    assert '<form method="post"' in reply.body
    assert f'action="?token={token}"' in reply.body
    assert 'name="List-Unsubscribe" value="One-Click"' in reply.body
    assert stored_events(ports) == []
    assert stage(ports, lead_id) is Stage.AWARENESS


def test_the_pages_are_neither_cached_nor_indexed(ports: Ports, lead_id: str) -> None:
    reply = call("GET", f"token={token_for(ports, lead_id)}")
    assert reply.headers["cache-control"] == "no-store"
    assert reply.headers["referrer-policy"] == "no-referrer"
    assert "noindex" in reply.headers["x-robots-tag"]


# --- bad tokens: 400, nothing changes -----------------------------------------------------------
def _tampered(token: str) -> str:
    payload, signature = token.split(".")
    # The first character: the last one of 43 carries two bits no decoder reads, so changing it may change nothing.
    return f"{payload}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"


BAD_TOKENS = {
    "missing": lambda ports, lead: None,
    "empty": lambda ports, lead: "",
    "tampered": lambda ports, lead: _tampered(token_for(ports, lead)),
    "forged-other-key": lambda ports, lead: Signer(b"not our key").sign("unsubscribe", lead, T0),
    "click-token": lambda ports, lead: token_for(ports, lead, "click"),
    "expired": lambda ports, lead: ports.signer.sign("unsubscribe", lead, T0 - timedelta(days=366)),
    "garbage": lambda ports, lead: "<script>alert(1)</script>",
    "padded": lambda ports, lead: token_for(ports, lead) + "==",
}


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_repeated_token_parameter_is_refused(ports: Ports, lead_id: str, method: str) -> None:
    # API Gateway joins repeated values with commas: "bad,<good>" is no token, whichever value was meant
    reply = call(method, f"token=bad&token={quote(token_for(ports, lead_id))}", ONE_CLICK, FORM)
    assert reply.status == 400
    assert stored_events(ports) == []


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("kind", sorted(BAD_TOKENS))
def test_a_bad_token_is_a_400_page_and_changes_nothing(ports: Ports, lead_id: str, method: str, kind: str) -> None:
    token = BAD_TOKENS[kind](ports, lead_id)
    reply = call(method, "" if token is None else f"token={quote(token)}", ONE_CLICK, FORM)
    assert reply.status == 400
    assert reply.headers["content-type"].startswith("text/html")
    assert "This unsubscribe link is not valid" in reply.body
    assert "<form" not in reply.body
    assert "<script>" not in reply.body
    assert stored_events(ports) == []
    assert stage(ports, lead_id) is Stage.AWARENESS


def test_a_valid_token_for_a_lead_that_is_gone_changes_nothing(ports: Ports) -> None:
    reply = call("POST", f"token={token_for(ports, 'gone-lead')}", ONE_CLICK, FORM)
    assert reply.status == 404
    assert "could not find" in reply.body
    assert stored_events(ports) == []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(["GET", "POST"]),
    query=st.one_of(
        st.text(max_size=300),
        st.builds(lambda t: f"token={t}", st.text(max_size=700)),
        st.builds(lambda t: f"token={quote(t)}&token=x", st.text(max_size=100)),
    ),
    body=st.binary(max_size=300),
    content_type=st.sampled_from(["", "application/x-www-form-urlencoded", "multipart/form-data", "text/plain"]),
)
def test_no_token_or_body_is_ever_a_5xx(ports: Ports, method: str, query: str, body: bytes, content_type: str) -> None:
    reply = call(method, query, body, {"content-type": content_type} if content_type else {})
    assert reply.status in (200, 400, 404)
    assert stored_events(ports) == []  # nothing that was not signed by us stores anything


# --- after opting out, nothing more is sent; a demo request still reaches sales -----------------
def test_after_unsubscribing_new_intent_sends_nothing_but_a_demo_request_still_alerts_sales(
    ports: Ports, service: LeadService, lead_id: str
) -> None:
    call("POST", f"token={token_for(ports, lead_id)}", ONE_CLICK, FORM)
    score_new_events(ports, service)
    queued = len(ports.queue.queued)  # type: ignore[attr-defined]
    # When she keeps reading pricing pages and a month passes
    service.receive([track("Pricing Page Viewed", at=T0 + timedelta(days=1), user="u-ada")], T0 + timedelta(days=1))
    for day in range(2, 32):
        service.tick(lead_id, T0 + timedelta(days=day))
    # Then nothing more is queued to be sent, and she stays opted out
    assert len(ports.queue.queued) == queued  # type: ignore[attr-defined]
    assert stage(ports, lead_id) is Stage.OPTED_OUT
    # When she requests a demo, sales hears of it
    at = T0 + timedelta(days=32)
    service.receive([track("Demo Requested", at=at, user="u-ada")], at)
    assert isinstance(ports.bus, FakeBus)
    alerts = [e for e in ports.bus.published if isinstance(e, SalesAlert)]
    assert [a.reason for a in alerts][-1:] == ["Demo request (lead has opted out of email)"]
    assert len(ports.queue.queued) == queued  # type: ignore[attr-defined]


# --- the email SES receives ----------------------------------------------------------------------
@dataclass
class RecordingSes:
    """An SES v2 client that keeps each SendEmail request, or fails as told."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    error: Exception | None = None

    def send_email(self, **request: Any) -> dict[str, str]:
        self.calls.append(request)
        if self.error is not None:
            raise self.error
        return {"MessageId": f"ses-{len(self.calls)}"}


UNSUBSCRIBE_HEADERS = {
    "List-Unsubscribe": "<https://api.nurture.example/v1/unsubscribe?token=" + "x" * 300 + "." + "y" * 43 + ">",
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
}


def _send(ses: RecordingSes, subject: str = "Why drips stall — and what works") -> str:
    mailer = SesMailer(ses, "nurture@example.com", "nurture")
    return mailer.send(
        to="ada@northwind.example",
        subject=subject,
        text="Hello Ada, here is what we found. Ünïcode too.",
        html="<p>Hello Ada, here is <b>what we found</b>. Ünïcode too.</p>",
        tags={"sequence": "awareness", "content_id": "why-drips-stall"},
        headers=UNSUBSCRIBE_HEADERS,
    )


def _received(ses: RecordingSes) -> EmailMessage:
    raw = ses.calls[-1]["Content"]["Raw"]["Data"]
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_the_email_is_raw_mime_with_both_parts_and_the_unsubscribe_headers() -> None:
    ses = RecordingSes()
    assert _send(ses) == "ses-1"
    request = ses.calls[0]
    assert request["ConfigurationSetName"] == "nurture"
    assert request["FromEmailAddress"] == "nurture@example.com"
    assert request["EmailTags"] == [
        {"Name": "sequence", "Value": "awareness"},
        {"Name": "content_id", "Value": "why-drips-stall"},
    ]
    message = _received(ses)
    assert message.get_content_type() == "multipart/alternative"
    assert (message["From"], message["To"]) == ("nurture@example.com", "ada@northwind.example")
    assert message["Subject"] == "Why drips stall — and what works"
    # The long List-Unsubscribe URL arrives whole, as written (no encoded words, no folding inside it)
    assert message["List-Unsubscribe"] == UNSUBSCRIBE_HEADERS["List-Unsubscribe"]
    raw_line = f"\r\nList-Unsubscribe: {UNSUBSCRIBE_HEADERS['List-Unsubscribe']}\r\n".encode()
    assert raw_line in request["Content"]["Raw"]["Data"]  # as mail clients read it: one line, not encoded words
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None
    assert "Ünïcode" in text.get_content()
    assert html is not None
    assert "<b>what we found</b>" in html.get_content()
    assert request["Content"]["Raw"]["Data"].isascii()  # 7-bit on the wire: quoted-printable bodies


def test_a_line_break_in_the_subject_cannot_add_a_header() -> None:
    ses = RecordingSes()
    _send(ses, subject="Hello\r\nBcc: everyone@competitor.example")
    message = _received(ses)
    assert message["Bcc"] is None
    assert message["Subject"] == "Hello Bcc: everyone@competitor.example"


def test_a_refusal_is_not_sent_but_a_lost_answer_is_not_a_refusal() -> None:
    refused = RecordingSes(error=ClientError({"Error": {"Code": "MessageRejected", "Message": "no"}}, "SendEmail"))
    with pytest.raises(NotSent):
        _send(refused)
    unreachable = RecordingSes(error=ConnectTimeoutError(endpoint_url="https://email.eu-west-1.amazonaws.com"))
    with pytest.raises(NotSent):
        _send(unreachable)
    lost = RecordingSes(error=ReadTimeoutError(endpoint_url="https://email.eu-west-1.amazonaws.com"))
    with pytest.raises(ReadTimeoutError):
        _send(lost)


# --- the OpenAPI document describes what the route answers -----------------------------------------
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_every_answer_is_one_the_openapi_document_declares(ports: Ports, lead_id: str, method: str) -> None:
    operation = openapi_document()["paths"][UNSUBSCRIBE_PATH][method.lower()]
    assert [p["name"] for p in operation["parameters"]] == ["token"]
    good, bad = token_for(ports, lead_id), _tampered(token_for(ports, lead_id))
    for query in (f"token={good}", f"token={bad}", ""):
        reply = call(method, query, ONE_CLICK, FORM)
        assert str(reply.status) in operation["responses"], (method, query, reply.status)
        assert reply.headers["content-type"].split(";")[0] in operation["responses"][str(reply.status)]["content"]


def test_an_email_that_cannot_be_written_as_mime_never_reaches_ses() -> None:
    ses = RecordingSes()
    mailer = SesMailer(ses, "nurture@example.com", "nurture")
    with pytest.raises(NotSent):
        mailer.send("ada@northwind.example", "Hi", "text \ud800", "<p>html</p>", {}, UNSUBSCRIBE_HEADERS)
    assert ses.calls == []
