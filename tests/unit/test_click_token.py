"""The signed click token of an email link (`nt=`), sent by nurture.js in an identify's `context.nurture.click_token`,
through the real resolver: a valid one ties the visitor's anonymous history to the lead it was signed for; a forged,
tampered, expired or wrong-purpose one is a 400 naming the field that links nothing; the token is never stored.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nurture.api.resolver import build_app
from nurture.constants import ENV_ALLOWED_ORIGINS, ENV_LOCAL_ADMIN_TOKEN
from nurture.domain.tokens import Signer
from nurture.pipeline.ingest import CLICK_TOKEN_FIELD, CLICK_USER_PREFIX
from nurture.pipeline.leads import LeadService
from nurture.pipeline.ports import Ports, StoredEvent
from nurture.pipeline.score import CoalescingScorer
from nurture.runtime import clock, wiring
from nurture.runtime.clock import ManualClock, SystemClock
from nurture.runtime.settings import settings as nurture_settings
from nurture.tools.local.lambda_events import LocalContext, http_event
from tests.fakes import FakeEvents, fake_content, fake_ports
from tests.support import T0, ada, identify, starter

WRITE_KEY = "wk-test"
VISITOR = "a-phone"  # the browser the email link was opened in: never identified before
PRICING = 30.0  # the starter programme's points for a pricing page visit


def post(path: str, body: dict[str, Any], origin: str | None = None) -> tuple[int, dict[str, Any]]:
    """One ingest request as API Gateway delivers it, with the write key in the body as sendBeacon sends it."""
    headers = {"content-type": "text/plain;charset=UTF-8", **({"origin": origin} if origin else {})}
    raw = json.dumps({**body, "writeKey": WRITE_KEY}).encode()
    event = http_event("POST", path, "", headers, raw, clock.now())
    answer = build_app(lambda: frozenset({WRITE_KEY})).resolve(event, LocalContext("ingest"))  # type: ignore[arg-type]
    text = answer["body"] or ""
    if answer.get("isBase64Encoded"):
        text = base64.b64decode(text).decode()
    return answer["statusCode"], json.loads(text)


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    monkeypatch.delenv(ENV_LOCAL_ADMIN_TOKEN, raising=False)
    monkeypatch.setenv(ENV_ALLOWED_ORIGINS, "https://www.northwind.example")
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


def stored(ports: Ports) -> list[StoredEvent]:
    assert isinstance(ports.events, FakeEvents)
    return list(ports.events.items.values())


def score(ports: Ports, service: LeadService, already: int = 0) -> None:
    """What the scorer does with the events table's stream: apply each new stored message, in stored order."""
    for event in stored(ports)[already:]:
        service.receive([event.message], T0)


def form_lead(ports: Ports, service: LeadService) -> str:
    """Bea filled in a form on her laptop (nurture.js: an identify with her anonymousId, no userId)."""
    lead_id = service.receive([identify(user=None, anonymous="a-laptop", email="bea@northwind.example")], T0)
    assert stored(ports) == []  # made by the lead service directly: the tests below count what the API stores
    return lead_id


def visitor_reads_pricing(ports: Ports, service: LeadService) -> None:
    """On her phone, never identified, she reads the pricing page: an anonymous lead of its own."""
    status, _ = post("/v1/page", {"type": "page", "anonymousId": VISITOR, "messageId": "p-1", "name": "Pricing",
                                  "properties": {"path": "/pricing"}})  # fmt: skip
    assert status == 200
    score(ports, service)


def click_identify(token: Any, message_id: str = "click-1", **fields: Any) -> dict[str, Any]:
    return {
        "type": "identify",
        "anonymousId": VISITOR,
        "messageId": message_id,
        "context": {"nurture": {"click_token": token}, "page": {"path": "/blog/launch"}},
        **fields,
    }


def intent(ports: Ports, lead_id: str) -> float:
    lead = ports.leads.get(lead_id)
    assert lead is not None
    return lead.lead.intent(starter(), T0)


def visitor_lead(ports: Ports) -> str | None:
    return ports.leads.leads_for([f"a#{VISITOR}"]).get(f"a#{VISITOR}")


# --- a valid token links ------------------------------------------------------------------------
def test_an_email_click_folds_the_visitors_anonymous_history_into_the_lead_without_a_user_id(
    ports: Ports, service: LeadService
) -> None:
    # Given Bea, known by a form on her laptop, who read the pricing page on her phone before clicking our email
    lead_id = form_lead(ports, service)
    visitor_reads_pricing(ports, service)
    assert intent(ports, lead_id) == 0
    before = len(stored(ports))
    # When nurture.js on her phone sends the identify carrying the email link's click token
    status, answer = post("/v1/identify", click_identify(ports.signer.sign("click", lead_id, T0)))
    assert (status, answer["accepted"]) == (200, 1), answer
    score(ports, service, before)
    # Then her phone's pricing visit counts for her lead, and her phone's browsing now lands on it
    assert intent(ports, lead_id) == PRICING
    assert visitor_lead(ports) == lead_id


def test_an_email_click_keeps_the_leads_id_when_the_scorer_reads_it_in_one_batch(
    ports: Ports, service: LeadService
) -> None:
    # Given Bea's lead (no userId) and her phone's own anonymous lead, from its pricing visit
    lead_id = form_lead(ports, service)
    visitor_reads_pricing(ports, service)
    before = len(stored(ports))
    # When her click's messages reach the scorer in one stream batch, in either order
    assert post("/v1/identify", click_identify(ports.signer.sign("click", lead_id, T0)))[0] == 200
    batch = list(reversed(stored(ports)[before:]))
    scorer = CoalescingScorer(service, batch, T0)
    for event in batch:
        scorer.handle(event)
    # Then her lead survives, with its id, her email and the phone's visit; the phone's lead is folded into it
    assert visitor_lead(ports) == lead_id
    lead = ports.leads.get(lead_id)
    assert lead is not None
    assert lead.lead.email == "bea@northwind.example"
    assert intent(ports, lead_id) == PRICING


def test_an_email_click_joins_a_lead_with_a_user_id_under_that_user_id(ports: Ports, service: LeadService) -> None:
    # Given Ada, identified by the website as u-ada, and a phone that read the pricing page anonymously
    lead_id = ada(service)  # her own pricing visit: 30
    visitor_reads_pricing(ports, service)
    before = len(stored(ports))
    # When she clicks our email on the phone
    status, _ = post("/v1/identify", click_identify(ports.signer.sign("click", lead_id, T0)))
    assert status == 200
    # Then the identify is stored under her userId, and the phone's visit is hers
    [linked] = stored(ports)[before:]
    assert (linked.profile_id, linked.message.anonymous_id) == ("u#u-ada", VISITOR)
    score(ports, service, before)
    assert intent(ports, lead_id) == 2 * PRICING
    assert visitor_lead(ports) == lead_id


def test_a_second_device_clicking_joins_the_same_lead(ports: Ports, service: LeadService) -> None:
    # Given Bea's phone already tied to her lead by one click
    lead_id = form_lead(ports, service)
    visitor_reads_pricing(ports, service)
    token = ports.signer.sign("click", lead_id, T0)
    assert post("/v1/identify", click_identify(token))[0] == 200
    score(ports, service, 1)
    # When a tablet clicks a link of the same email
    before = len(stored(ports))
    tablet = {**click_identify(token, "click-2"), "anonymousId": "a-tablet"}
    assert post("/v1/identify", tablet)[0] == 200
    score(ports, service, before)
    # Then the tablet joins her lead too, and her lead was given its userId once
    assert ports.leads.leads_for(["a#a-tablet"]) == {"a#a-tablet": lead_id}
    givers = [e for e in stored(ports) if e.message.message_id.startswith("click-user-")]
    assert len(givers) == 1
    assert intent(ports, lead_id) == PRICING


def test_a_click_token_is_never_stored(ports: Ports, service: LeadService) -> None:
    # Given a valid token, sent on an identify and (by a client that copies context) on a page in one batch
    lead_id = form_lead(ports, service)
    token = ports.signer.sign("click", lead_id, T0)
    shared = {"nurture": {"click_token": token}}
    batch = {
        "batch": [
            {**click_identify(token), "context": {}},
            {"type": "page", "anonymousId": VISITOR, "messageId": "p-2", "properties": {"path": "/blog/launch"}},
        ],
        "context": shared,
    }
    # When the batch is sent
    status, answer = post("/v1/batch", batch)
    assert (status, answer["accepted"]) == (200, 2), answer
    # Then no stored message carries it (only the lead it named), and the batch's own context is left as it was
    everything = json.dumps([e.model_dump(mode="json") for e in stored(ports)])
    assert token not in everything
    assert all("click_token" not in json.dumps(e.message.context) for e in stored(ports))
    assert any(e.message.context.get("nurture") == {"click_lead_id": lead_id} for e in stored(ports))
    assert shared == {"nurture": {"click_token": token}}


# --- a bad token links nothing ------------------------------------------------------------------
def _forged(ports: Ports, lead_id: str) -> str:
    return Signer(b"someone else's key").sign("click", lead_id, T0)


def _tampered(ports: Ports, lead_id: str) -> str:
    """A real token whose payload names another lead, keeping the real signature."""
    real = ports.signer.sign("click", "someone-else", T0)
    payload = json.loads(base64.urlsafe_b64decode(real.split(".")[0] + "=="))
    payload["l"] = lead_id
    encoded = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).rstrip(b"=").decode()
    return f"{encoded}.{real.split('.')[1]}"


def _expired(ports: Ports, lead_id: str) -> str:
    return ports.signer.sign("click", lead_id, T0 - timedelta(days=91))  # a click token lives 90 days


def _unsubscribe(ports: Ports, lead_id: str) -> str:
    return ports.signer.sign("unsubscribe", lead_id, T0)  # a real token, for another purpose


BAD_TOKENS = {
    "forged": _forged,
    "tampered": _tampered,
    "expired": _expired,
    "wrong-purpose": _unsubscribe,
    "not-a-string": lambda ports, lead_id: {"l": lead_id},
    "empty": lambda ports, lead_id: "",
}


@pytest.mark.parametrize("bad", BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
def test_a_bad_click_token_is_refused_by_field_and_links_nothing(ports: Ports, service: LeadService, bad: Any) -> None:
    # Given Bea's lead and a phone that read the pricing page
    lead_id = form_lead(ports, service)
    visitor_reads_pricing(ports, service)
    phone = visitor_lead(ports)
    before = len(stored(ports))
    # When the phone sends an identify with a token that is not a valid click token for her
    status, answer = post("/v1/identify", click_identify(bad(ports, lead_id)))
    # Then it is a 400 naming the field, nothing is stored, and the phone's history stays apart from her lead
    assert status == 400, answer
    [problem] = answer["errors"]
    assert problem["field"] == CLICK_TOKEN_FIELD
    assert "not linked" in problem["problem"] or "must be a string" in problem["problem"]
    assert len(stored(ports)) == before
    score(ports, service, before)
    assert intent(ports, lead_id) == 0
    assert visitor_lead(ports) == phone != lead_id


def test_an_expired_token_is_told_as_expired(ports: Ports, service: LeadService) -> None:
    lead_id = form_lead(ports, service)
    status, answer = post("/v1/identify", click_identify(_expired(ports, lead_id)))
    assert status == 400
    assert "expired" in answer["errors"][0]["problem"]


def test_a_bad_token_in_a_batch_costs_only_its_identify(ports: Ports, service: LeadService) -> None:
    # Given a batch as nurture.js sends it on arrival from an email: the identify, then the page view
    lead_id = form_lead(ports, service)
    batch = {
        "batch": [
            click_identify(_forged(ports, lead_id)),
            {"type": "page", "anonymousId": VISITOR, "messageId": "p-3", "properties": {"path": "/pricing"}},
        ]
    }
    # When its token is forged
    status, answer = post("/v1/batch", batch)
    # Then the page view is stored, the identify is refused at its index, and nothing reaches her lead
    assert (status, answer["accepted"]) == (400, 1)
    assert [(e["index"], e["field"]) for e in answer["errors"]] == [(0, CLICK_TOKEN_FIELD)]
    score(ports, service)
    assert intent(ports, lead_id) == 0


def test_a_token_for_a_lead_that_no_longer_exists_links_nothing(ports: Ports, service: LeadService) -> None:
    status, answer = post("/v1/identify", click_identify(ports.signer.sign("click", "erased-lead", T0)))
    assert status == 400
    assert answer["errors"][0]["field"] == CLICK_TOKEN_FIELD
    assert "no longer exists" in answer["errors"][0]["problem"]
    assert stored(ports) == []


def test_an_identify_naming_its_own_user_id_is_not_moved_by_a_token(ports: Ports, service: LeadService) -> None:
    # Given the website knows the visitor as u-cy, and the email link was Bea's (forwarded to Cy)
    lead_id = form_lead(ports, service)
    message = click_identify(ports.signer.sign("click", lead_id, T0), userId="u-cy")
    # When Cy's identify arrives with Bea's token
    status, _ = post("/v1/identify", message)
    # Then it is stored as Cy's, and Bea's lead gains nothing
    assert status == 200
    [event] = stored(ports)
    assert event.profile_id == "u#u-cy"
    score(ports, service)
    assert ports.leads.leads_for(["u#u-cy"])["u#u-cy"] != lead_id


def test_a_website_cannot_claim_a_verified_click_without_a_token(ports: Ports, service: LeadService) -> None:
    lead_id = form_lead(ports, service)
    message = {**click_identify(None), "context": {"nurture": {"click_lead_id": lead_id, "campaign": "spring"}}}
    assert post("/v1/identify", message)[0] == 200
    [event] = stored(ports)
    assert event.message.context["nurture"] == {"campaign": "spring"}
    assert event.profile_id == f"a#{VISITOR}"


def test_a_website_cannot_send_the_user_id_an_email_click_gives(ports: Ports, service: LeadService) -> None:
    lead_id = form_lead(ports, service)
    message = {"type": "page", "userId": f"{CLICK_USER_PREFIX}{lead_id}", "anonymousId": VISITOR, "messageId": "p"}
    status, answer = post("/v1/page", message)
    assert status == 400
    assert answer["errors"][0]["field"] == "userId"
    assert stored(ports) == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(token=st.recursive(st.none() | st.booleans() | st.integers() | st.text(), lambda inner: st.lists(inner)))
def test_no_click_token_is_ever_a_server_error(ports: Ports, token: Any) -> None:
    status, _ = post("/v1/identify", click_identify(token))
    assert status in (200, 400)


# --- origins ------------------------------------------------------------------------------------
def test_a_page_from_an_origin_not_allowed_has_nothing_stored(ports: Ports) -> None:
    # Given a beacon (text/plain: the browser sends it without a CORS preflight) from a site not allowed
    message = {"type": "page", "anonymousId": VISITOR, "messageId": "p-4", "properties": {"path": "/pricing"}}
    # When it arrives
    status, answer = post("/v1/page", message, origin="https://evil.example")
    # Then it is refused and nothing is stored; from the allowed site it is stored
    assert status == 403, answer
    assert "evil.example" in answer["message"]
    assert stored(ports) == []
    assert post("/v1/page", message, origin="https://www.northwind.example")[0] == 200
    assert len(stored(ports)) == 1
