"""The routes of the public HTTP API (v1): Segment-compatible ingestion and the admin lead routes.

Built on powertools' HTTP resolver; the OpenAPI document is generated from these routes and the
pydantic models (`nurture.api.openapi`). Bad input gets a 4xx naming the field and stores nothing of
the bad message; errors map to HTTP status in one place (`nurture.api.errors`).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, CORSConfig, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel

from nurture.api import sales, unsubscribe
from nurture.api.auth import known_write_key, same_secret, secret_write_keys, write_key_of
from nurture.api.errors import ApiError, ErrorBody, Forbidden, NotFound, TooLarge, Unauthorised
from nurture.api.views import IngestResult, LeadView, lead_view
from nurture.domain.messages import IdentifyMessage, PageMessage, TrackMessage
from nurture.pipeline.erase import Eraser, Erasure
from nurture.pipeline.ingest import (
    MAX_BATCH_BYTES,
    MAX_MESSAGE_BYTES,
    Batch,
    ClickLinks,
    Intake,
    Problem,
    parse_body,
    read_messages,
)
from nurture.pipeline.ports import EventStore, StoredEvent, StoredLead
from nurture.runtime import clock, wiring
from nurture.runtime.observability import Metric, count, logger
from nurture.runtime.settings import settings

API_TITLE = "Nurture engine API"
STORE_CONCURRENCY = 16  # within the DynamoDB client's connection pool (nurture.runtime.clients)
API_VERSION = "1.0.0"
WriteKeys = Callable[[], frozenset[str]]


def store_all(events: EventStore, accepted: list[StoredEvent]) -> list[bool]:
    """Store each event (True when new). A full batch is thousands of conditional puts: run them
    concurrently, or a 500 KB batch alone would take most of the Lambda's timeout."""
    if len(accepted) <= 1:
        return [events.put(stored) for stored in accepted]
    with ThreadPoolExecutor(max_workers=STORE_CONCURRENCY) as pool:
        return list(pool.map(events.put, accepted))


_INGEST_RESPONSES: dict[int, OpenAPIResponse] = {
    200: {
        "description": "Every message stored (or already stored)",
        "content": {"application/json": {"model": IngestResult}},
    },
    400: {
        "description": "Some messages were bad: each is named by index and field; the good ones were stored",
        "content": {"application/json": {"model": IngestResult}},
    },
    401: {"description": "Missing or unknown write key", "content": {"application/json": {"model": ErrorBody}}},
    403: {
        "description": "Sent by a web page whose origin is not one of the stack's allowed origins: nothing stored",
        "content": {"application/json": {"model": ErrorBody}},
    },
    413: {
        "description": "A message over 32 KB or a batch over 500 KB",
        "content": {"application/json": {"model": ErrorBody}},
    },
}
_ADMIN_RESPONSES: dict[int, OpenAPIResponse] = {
    200: {"description": "The lead", "content": {"application/json": {"model": LeadView}}},
    400: {
        "description": "A bad query or path parameter, named in `errors`",
        "content": {"application/json": {"model": ErrorBody}},
    },
    401: {"description": "Missing or wrong admin credential", "content": {"application/json": {"model": ErrorBody}}},
    404: {"description": "No such lead", "content": {"application/json": {"model": ErrorBody}}},
}
_ERASE_RESPONSES: dict[int, OpenAPIResponse] = {
    **_ADMIN_RESPONSES,
    200: {"description": "Erased: what was removed, in counts", "content": {"application/json": {"model": Erasure}}},
    404: {
        "description": "No such lead: never known, or erased already",
        "content": {"application/json": {"model": ErrorBody}},
    },
}
INGEST_BODIES: dict[str, type[BaseModel]] = {
    "/v1/track": TrackMessage,
    "/v1/page": PageMessage,
    "/v1/identify": IdentifyMessage,
    "/v1/batch": Batch,
}


def build_app(
    write_keys: WriteKeys = secret_write_keys, cors_origins: Sequence[str] | None = None
) -> APIGatewayHttpResolver:
    """The v1 API. CORS allows `cors_origins`, by default the settings' (so the OpenAPI document needs no settings)."""
    origins = list(settings().allowed_origins if cors_origins is None else cors_origins)
    cors = (
        CORSConfig(
            allow_origin=origins[0],
            extra_origins=origins[1:],
            max_age=600,
            allow_headers=["Authorization", "Content-Type", "X-Write-Key"],
        )
        if origins
        else None
    )
    app = APIGatewayHttpResolver(cors=cors, enable_validation=True)

    def ingest(kind: str | None) -> Response[Any]:
        event = app.current_event
        raw: bytes | None
        try:
            raw = base64.b64decode(event.body or "") if event.is_base64_encoded else (event.body or "").encode()
        except ValueError:  # not base64, or a lone surrogate: nothing API Gateway sends, but a 400, never a 500
            raw = None
        limit = MAX_BATCH_BYTES if kind is None else MAX_MESSAGE_BYTES
        if raw is not None and len(raw) > limit:
            raise TooLarge(f"the body is {len(raw):,} bytes; the limit is {limit:,}")
        # Parsed before the write key is checked, as the key may be in the body: parse_body never raises,
        # so a body that cannot be read is a 401 without a key and a 400 with one, never a 5xx.
        body = parse_body(raw) if raw is not None else Problem(field="body", problem="could not be decoded")
        # CORS alone does not stop a browser: a text/plain POST (navigator.sendBeacon) is sent without asking, and
        # only its answer is hidden from the page. So a page from an origin not allowed has nothing stored.
        origin = next((value for name, value in event.headers.items() if name.lower() == "origin"), None)
        if origin is not None and "*" not in origins and origin not in origins:
            raise Forbidden(f"the origin {origin[:100]} may not send events: add it to the stack's allowed origins")
        if not known_write_key(write_key_of(dict(event.headers), body), write_keys()):
            raise Unauthorised(
                "missing or unknown write key: send it as the HTTP basic user, in X-Write-Key, "
                "or as writeKey in the body"
            )
        # Not JSON gets the same 400 body as any other bad message, so a client reads one shape.
        ports = wiring.ports()
        clicks = ClickLinks(ports.signer, ports.leads, ports.events)  # an email link's token ties the visitor
        intake = (
            Intake(problems=[body]) if isinstance(body, Problem) else read_messages(body, kind, clock.now(), clicks)
        )
        duplicates = sum(not new for new in store_all(ports.events, intake.accepted))
        count(Metric.MESSAGES_ACCEPTED, len(intake.accepted))
        count(Metric.MESSAGES_REJECTED, len(intake.problems))
        count(Metric.DUPLICATE_MESSAGES, duplicates)
        result = IngestResult(
            success=not intake.problems, accepted=len(intake.accepted), duplicates=duplicates, errors=intake.problems
        )
        status = HTTPStatus.OK if result.success else HTTPStatus.BAD_REQUEST
        return Response(status_code=int(status), content_type=content_types.APPLICATION_JSON, body=result.model_dump())

    def ingest_route(kind: str | None) -> Callable[[], Response[Any]]:
        # A closure, not a default argument: powertools documents every parameter as a query parameter.
        def route() -> Response[Any]:
            return ingest(kind)

        route.__name__ = f"ingest_{kind or 'batch'}"
        return route

    for path, kind in (("/v1/track", "track"), ("/v1/page", "page"), ("/v1/identify", "identify"), ("/v1/batch", None)):
        app.post(
            path,
            enable_validation=False,
            responses=_INGEST_RESPONSES,
            tags=["ingest"],
            summary=f"Record {'a batch of messages' if kind is None else f'one {kind} message'} (Segment spec)",
        )(ingest_route(kind))

    def require_admin(app: APIGatewayHttpResolver, next_middleware: Callable[..., Response[Any]]) -> Response[Any]:
        token = settings().admin_token
        event = app.current_event
        if token:  # the local stack: a bearer token (an empty one would let anyone in)
            given = event.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not same_secret(given, token):
                raise Unauthorised("admin routes need the admin token as a bearer credential")
        elif not (event.request_context.authorizer and event.request_context.authorizer.iam):
            raise Unauthorised("admin routes need IAM authorisation")
        return next_middleware(app)

    def admin_route(path: str, summary: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return app.get(path, middlewares=[require_admin], responses=_ADMIN_RESPONSES, tags=["admin"], summary=summary)

    def admin_view(stored: StoredLead) -> LeadView:
        ports = wiring.ports()
        records = ports.leads.send_records(stored.lead.lead_id)  # each send's delivery
        owner = ports.owners.owner_of(stored.lead.lead_id) if ports.owners else None
        return lead_view(stored, wiring.content().programme(), clock.now(), records, owner)

    @admin_route("/v1/leads", "Find a lead by email")
    def find_lead(email: Annotated[str, Query(min_length=3, max_length=254)]) -> LeadView:
        stored = wiring.ports().leads.find_by_email(email)
        if stored is None:
            raise NotFound("no lead with that email")
        return admin_view(stored)

    @admin_route("/v1/leads/<lead_id>", "A lead's stage, scores with their explanation, transitions and sends")
    def get_lead(lead_id: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_:.-]+$")]) -> LeadView:
        stored = wiring.ports().leads.get(lead_id)
        if stored is None:
            raise NotFound("no lead with that id")
        return admin_view(stored)

    @app.delete(
        "/v1/leads/<lead_id>",
        middlewares=[require_admin],
        responses=_ERASE_RESPONSES,
        tags=["admin"],
        summary="Erase a lead: its personal data and events, everywhere (GDPR erasure; docs/privacy.md)",
    )
    def erase_lead(
        lead_id: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_:.-]+$")],
    ) -> Erasure:
        erasure = Eraser(wiring.ports()).erase(lead_id, clock.now())
        if erasure is None:
            raise NotFound("no lead with that id: never known, or erased already")
        return erasure

    sales.register(app, require_admin, admin_view, _ADMIN_RESPONSES)
    unsubscribe.register(app)  # the signed token is its credential: no write key, no admin

    @app.exception_handler(ApiError)
    def api_error(error: ApiError) -> Response[Any]:
        if error.status >= 500:
            logger.exception("request failed")
        return Response(
            status_code=int(error.status),
            content_type=content_types.APPLICATION_JSON,
            body=ErrorBody(message=error.message, errors=error.errors).model_dump(),
        )

    @app.exception_handler(RequestValidationError)
    def invalid_request(error: RequestValidationError) -> Response[Any]:
        problems = [
            Problem(field=".".join(str(p) for p in e["loc"][1:]) or str(e["loc"][0]), problem=e["msg"])
            for e in error.errors()
        ]
        response: Response[Any] = api_error(ApiError("the request is not valid", problems))
        return response

    return app


@cache
def app() -> APIGatewayHttpResolver:
    return build_app()
