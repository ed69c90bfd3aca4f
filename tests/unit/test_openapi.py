"""The OpenAPI document: generated from the code, committed in docs/, valid OpenAPI, and true to what the API answers.

The answers are the live resolver's (`build_app`), given API Gateway events, checked against the response the
document declares for that path, method and status: the status must be documented, the content type declared and
the body valid against the declared schema (OpenAPI 3.1's JSON Schema dialect, `$ref`s resolved in the document).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jsonschema.exceptions import ValidationError
from openapi_schema_validator import OAS31Validator, oas31_format_checker
from openapi_spec_validator import validate as validate_openapi
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from nurture.api.openapi import openapi_document
from nurture.api.resolver import build_app
from nurture.constants import ENV_ALLOWED_ORIGINS, ENV_LOCAL_ADMIN_TOKEN, UNSUBSCRIBE_PATH
from nurture.pipeline.ingest import MAX_MESSAGE_BYTES
from nurture.pipeline.leads import LeadService
from nurture.runtime import clock, wiring
from nurture.runtime.clock import ManualClock, SystemClock
from nurture.runtime.settings import settings as nurture_settings
from nurture.tools.cli import main as nurture
from nurture.tools.local.lambda_events import LocalContext, http_event
from tests.fakes import fake_content, fake_ports
from tests.support import ROOT, T0, ada, starter

COMMITTED = ROOT / "docs" / "openapi.json"
WRITE_KEY = "wk-openapi"
ADMIN_TOKEN = "admin-token-openapi"
ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}
WITH_KEY = {"content-type": "application/json", "x-write-key": WRITE_KEY}
LEAD_ID = "{lead_id}"  # stands for the id of the lead the fixture creates


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi_document()


# --- the document itself -------------------------------------------------------------------------------------


def test_the_committed_document_is_the_generated_one(tmp_path: Path) -> None:
    # Given the document exactly as the CLI writes it
    generated = tmp_path / "openapi.json"
    assert nurture(["openapi", "--output", str(generated)]) == 0
    # Then docs/openapi.json is byte for byte the same
    assert COMMITTED.read_text(encoding="utf-8") == generated.read_text(encoding="utf-8"), (
        "docs/openapi.json is out of date: run `nurture openapi --output docs/openapi.json` and commit it"
    )


def test_the_document_is_valid_openapi(document: dict[str, Any]) -> None:
    validate_openapi(json.loads(json.dumps(document)))


def test_the_validator_rejects_a_broken_document(document: dict[str, Any]) -> None:
    """The validity check above can fail: a parameter in the body, as Swagger 2 had it, is refused."""
    broken = copy.deepcopy(document)
    broken["paths"]["/v1/leads"]["get"]["parameters"][0]["in"] = "body"
    with pytest.raises(OpenAPIValidationError):
        validate_openapi(broken)


# --- the live API's answers against the document ---------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str
    body: Any


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    monkeypatch.setenv(ENV_LOCAL_ADMIN_TOKEN, ADMIN_TOKEN)
    monkeypatch.setenv(ENV_ALLOWED_ORIGINS, "")  # deployed with no browser origins
    nurture_settings.cache_clear()
    clock.use(ManualClock(T0))
    yield
    clock.use(SystemClock())
    wiring.reset()
    nurture_settings.cache_clear()


@pytest.fixture
def lead_id() -> str:
    """Fake ports wired in, with one identified lead (Ada) the admin routes can show."""
    ports = fake_ports()
    wiring.override(ports=ports, content=fake_content(ports))
    return ada(LeadService(ports, starter()))


def ask(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None, query: str = "") -> Reply:
    """One request through the live resolver, as API Gateway (HTTP API, payload 2.0) delivers it."""
    event = http_event(method, path, query, headers or {}, body, T0)
    context = LocalContext("ingest")  # the parts of a LambdaContext that powertools reads
    answer = build_app(lambda: frozenset({WRITE_KEY})).resolve(event, context)  # type: ignore[arg-type]
    headers_out = {k.lower(): v for k, v in answer.get("headers", {}).items()}
    return Reply(answer["statusCode"], headers_out.get("content-type", ""), json.loads(answer["body"] or "null"))


def documented_schema(document: dict[str, Any], path: str, method: str, status: int, content_type: str) -> Any:
    """The schema the document declares for this answer; fails if the status or content type is not declared."""
    responses = document["paths"][path][method.lower()]["responses"]
    assert str(status) in responses, f"{method} {path} answered {status}, which the document does not declare"
    content = responses[str(status)].get("content", {})
    media = content_type.split(";")[0].strip()
    assert media in content, f"{method} {path} {status} answered {media!r}; the document declares {sorted(content)}"
    return content[media]["schema"]


def check_against(document: dict[str, Any], schema: Any, instance: Any) -> None:
    """Validate against an OpenAPI 3.1 schema whose `#/components/...` references resolve in the document."""
    root = {"components": document["components"], **schema}
    OAS31Validator(root, format_checker=oas31_format_checker).validate(instance)


def track(**fields: Any) -> dict[str, Any]:
    return {"type": "track", "userId": "u-ada", "event": "Case Study Downloaded", **fields}


def padded_track(size: int) -> bytes:
    """A track message whose JSON is exactly `size` bytes."""
    empty = json.dumps(track(properties={"pad": ""})).encode()
    return json.dumps(track(properties={"pad": "x" * (size - len(empty))})).encode()


@dataclass(frozen=True)
class Case:
    """One request, the documented operation it is for, and the status it is meant to get."""

    status: int
    method: str
    documented: str  # the path as the document names it
    headers: dict[str, str]
    body: Any = None  # JSON-encoded unless already bytes
    query: str = ""
    path: str | None = None  # the request path, when it is not the documented one

    def request_body(self) -> bytes:
        return (
            self.body if isinstance(self.body, bytes) else b"" if self.body is None else json.dumps(self.body).encode()
        )


WRONG_KEY = {"content-type": "application/json", "x-write-key": "wk-stolen"}
GOOD_BATCH = {"batch": [track(messageId="m-1"), {"type": "page", "userId": "u-ada", "messageId": "m-2"}]}
BAD_BATCH = {"batch": [track(messageId="m-ok"), {"type": "track", "userId": "u-ada"}, {"type": "nope"}]}
BY_ID, BY_EMAIL = "/v1/leads/{lead_id}", "/v1/leads"
CASES = {
    "good-track": Case(200, "POST", "/v1/track", WITH_KEY, track()),
    "good-batch": Case(200, "POST", "/v1/batch", WITH_KEY, GOOD_BATCH),
    "bad-batch": Case(400, "POST", "/v1/batch", WITH_KEY, BAD_BATCH),
    "not-json": Case(400, "POST", "/v1/page", WITH_KEY, b"{not json"),
    "wrong-write-key": Case(401, "POST", "/v1/track", WRONG_KEY, track()),
    "too-large": Case(413, "POST", "/v1/track", WITH_KEY, padded_track(MAX_MESSAGE_BYTES + 1)),
    "lead-by-id": Case(200, "GET", BY_ID, ADMIN),
    "lead-by-email": Case(200, "GET", BY_EMAIL, ADMIN, query="email=Ada%40Northwind.example"),
    "lead-bad-email": Case(400, "GET", BY_EMAIL, ADMIN, query="email=a"),
    "lead-bad-id": Case(400, "GET", BY_ID, ADMIN, path="/v1/leads/not%20an%20id"),
    "lead-wrong-token": Case(401, "GET", BY_ID, {"authorization": "Bearer x"}),
    "lead-unknown-id": Case(404, "GET", BY_ID, ADMIN, path="/v1/leads/0a1b2c3d"),
    "lead-unknown-email": Case(404, "GET", BY_EMAIL, ADMIN, query="email=nobody%40northwind.example"),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_each_answer_is_the_documented_response(document: dict[str, Any], lead_id: str, case: Case) -> None:
    path = (case.path or case.documented).replace(LEAD_ID, lead_id)
    reply = ask(case.method, path, case.request_body(), case.headers, case.query)
    assert reply.status == case.status, reply.body  # the case reaches the answer it is about
    schema = documented_schema(document, case.documented, case.method, reply.status, reply.content_type)
    check_against(document, schema, reply.body)


def test_every_documented_operation_is_served_and_refuses_a_stranger_as_documented(
    document: dict[str, Any], lead_id: str
) -> None:
    # Every operation in the document is a route of the app: with good parameters and a body but no credential,
    # it answers 401 (not "no such route"), in the documented shape
    for path, operations in document["paths"].items():
        if path == UNSUBSCRIBE_PATH:
            continue  # its only credential is the signed token in the link: tests/unit/test_unsubscribe.py
        for method in operations:
            query = "email=ada%40northwind.example" if path == "/v1/leads" else ""
            reply = ask(method.upper(), path.replace(LEAD_ID, lead_id), json.dumps(track()).encode(), query=query)
            assert reply.status == 401, (method, path, reply)
            check_against(document, documented_schema(document, path, method, 401, reply.content_type), reply.body)


AT = {"timestamp": "2026-01-05T09:59:00Z"}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        pytest.param("/v1/track", track(messageId="m-1", properties={"plan": "pro"}, **AT), id="track"),
        pytest.param(
            "/v1/page",
            {"type": "page", "messageId": "m-2", "anonymousId": "a-1", "properties": {"path": "/x"}, **AT},
            id="page",
        ),
        pytest.param(
            "/v1/identify",
            {"type": "identify", "messageId": "m-3", "userId": "u-1", "traits": {"email": "u@x.io"}, **AT},
            id="identify",
        ),
        pytest.param(
            "/v1/batch",
            {"batch": [track(messageId="m-4", **AT), {"type": "page", "userId": "u-1", "messageId": "m-5", **AT}]},
            id="batch",
        ),
        pytest.param("/v1/track", {"userId": "u-1", "event": "Demo Requested"}, id="minimal"),
        pytest.param("/v1/batch", {"batch": [{"type": "page", "anonymousId": "a-2"}]}, id="minimal batch"),
    ],
)
def test_a_body_the_api_accepts_is_one_the_document_describes(
    document: dict[str, Any], lead_id: str, path: str, body: dict[str, Any]
) -> None:
    reply = ask("POST", path, json.dumps(body).encode(), WITH_KEY)
    assert reply.status == 200, reply.body
    request = document["paths"][path]["post"]["requestBody"]["content"]
    for media in ("application/json", "text/plain"):
        check_against(document, request[media]["schema"], body)


@pytest.mark.parametrize(
    ("schema", "body"),
    [
        pytest.param("IngestResult", {"success": True, "accepted": "one", "duplicates": 0, "errors": []}, id="ingest"),
        pytest.param("ErrorBody", {"errors": []}, id="error-without-message"),
        pytest.param("LeadView", {"lead_id": "l-1"}, id="lead-view-missing-fields"),
    ],
)
def test_the_response_check_can_fail(document: dict[str, Any], schema: str, body: dict[str, Any]) -> None:
    """The schemas the answers are checked against are real: a body that breaks them is refused."""
    with pytest.raises(ValidationError):
        check_against(document, {"$ref": f"#/components/schemas/{schema}"}, body)
