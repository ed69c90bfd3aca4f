"""The public HTTP API (v1): Segment-compatible ingestion and the admin lead routes.

Built on powertools' HTTP resolver; the OpenAPI document is generated from these routes and the
pydantic models (`nurture openapi`). Bad input gets a 4xx naming the field and stores nothing of
the bad message; errors map to HTTP status in one place (`ApiError`).
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import cache
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, CORSConfig, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.utilities import parameters
from pydantic import BaseModel, Field

from nurture import clock, wiring
from nurture.ingest import MAX_BATCH_BYTES, MAX_MESSAGE_BYTES, Batch, Intake, Problem, parse_body, read_messages
from nurture.journey import SentEmail, StageChange
from nurture.messages import IdentifyMessage, LeadTraits, PageMessage, TrackMessage
from nurture.observability import logger, metrics
from nurture.ports import EventStore, StoredEvent, StoredLead
from nurture.programme import Programme, Stage
from nurture.scoring import Contribution, contributions, fit_score
from nurture.settings import settings

API_TITLE = "Nurture engine API"
STORE_CONCURRENCY = 16  # within the DynamoDB client's connection pool (nurture.aws)
API_VERSION = "1.0.0"
WriteKeys = Callable[[], frozenset[str]]


class ApiError(Exception):
    """An error a client caused or must handle, with its HTTP status: the only place errors become status codes."""

    status = HTTPStatus.BAD_REQUEST

    def __init__(self, message: str, errors: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []


class Unauthorised(ApiError):
    status = HTTPStatus.UNAUTHORIZED


class TooLarge(ApiError):
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class NotFound(ApiError):
    status = HTTPStatus.NOT_FOUND


class IngestResult(BaseModel):
    success: bool
    accepted: int = Field(description="Messages stored by this request or already stored before (duplicates)")
    duplicates: int = Field(description="Messages whose messageId was already stored: counted once")
    errors: list[Problem] = Field(default_factory=list)


class ErrorBody(BaseModel):
    message: str
    errors: list[Problem] = Field(default_factory=list)


class LeadView(BaseModel):
    """What sales and marketing see of a lead: where it is, why, and what we know."""

    lead_id: str
    email: str | None
    stage: Stage | None
    stage_entered_at: datetime | None
    intent: float
    intent_explained: list[Contribution] = Field(description="Contributing events, most important first")
    fit: int
    fit_explained: list[tuple[str, int]]
    excluded_because: str | None
    traits: LeadTraits
    transitions: list[StageChange]
    sends: list[SentEmail]
    next_action_at: datetime | None


def lead_view(stored: StoredLead, programme: Programme, now: datetime) -> LeadView:
    lead = stored.lead
    fit = fit_score(lead.traits, programme)
    explained = contributions(lead.signals, programme, now)
    return LeadView(
        lead_id=lead.lead_id,
        email=lead.email,
        stage=lead.stage,
        stage_entered_at=lead.stage_entered_at,
        intent=round(lead.intent(programme, now), 1),
        intent_explained=explained,
        fit=fit.score,
        fit_explained=list(fit.reasons),
        excluded_because=fit.excluded_because,
        traits=lead.traits,
        transitions=list(lead.history),
        sends=list(lead.sent),
        next_action_at=lead.next_action_at(programme),
    )


def store_all(events: EventStore, accepted: list[StoredEvent]) -> list[bool]:
    """Store each event (True when new). A full batch is thousands of conditional puts: run them
    concurrently, or a 500 KB batch alone would take most of the Lambda's timeout."""
    if len(accepted) <= 1:
        return [events.put(stored) for stored in accepted]
    with ThreadPoolExecutor(max_workers=STORE_CONCURRENCY) as pool:
        return list(pool.map(events.put, accepted))


def secret_write_keys() -> frozenset[str]:
    """Write keys from Secrets Manager (`{"write_keys": [...]}`), cached for five minutes."""
    name = settings().write_keys_secret
    if not name:
        return frozenset()
    secret: Any = parameters.get_secret(name, transform="json", max_age=300)
    return frozenset(secret.get("write_keys", []))


def _write_key(headers: dict[str, str], body: Any) -> str | None:
    """Segment's three ways: HTTP basic user, the X-Write-Key header, or `writeKey` in the body (sendBeacon)."""
    authorization = headers.get("authorization", "")
    if authorization.lower().startswith("basic "):
        try:
            return base64.b64decode(authorization[6:]).decode().split(":", 1)[0]
        except ValueError:
            return None
    if headers.get("x-write-key"):
        return headers["x-write-key"]
    return body.get("writeKey") if isinstance(body, dict) and isinstance(body.get("writeKey"), str) else None


def _same(given: str, secret: str) -> bool:
    """Constant-time comparison; as bytes, because `compare_digest` refuses non-ASCII str (a 500, not a 401)."""
    return hmac.compare_digest(given.encode(), secret.encode())


def _known(key: str | None, keys: frozenset[str]) -> bool:
    return key is not None and any(_same(key, known) for known in keys)


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
INGEST_BODIES: dict[str, type[BaseModel]] = {
    "/v1/track": TrackMessage,
    "/v1/page": PageMessage,
    "/v1/identify": IdentifyMessage,
    "/v1/batch": Batch,
}


def build_app(write_keys: WriteKeys = secret_write_keys) -> APIGatewayHttpResolver:
    origins = settings().allowed_origins
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
        raw = base64.b64decode(event.body or "") if event.is_base64_encoded else (event.body or "").encode()
        limit = MAX_BATCH_BYTES if kind is None else MAX_MESSAGE_BYTES
        if len(raw) > limit:
            raise TooLarge(f"the body is {len(raw):,} bytes; the limit is {limit:,}")
        body = parse_body(raw)
        if not _known(_write_key(dict(event.headers), body), write_keys()):
            raise Unauthorised(
                "missing or unknown write key: send it as the HTTP basic user, in X-Write-Key, "
                "or as writeKey in the body"
            )
        # Not JSON gets the same 400 body as any other bad message, so a client reads one shape.
        intake = Intake(problems=[body]) if isinstance(body, Problem) else read_messages(body, kind, clock.now())
        duplicates = sum(not new for new in store_all(wiring.ports().events, intake.accepted))
        metrics.add_metric(name="MessagesAccepted", unit="Count", value=len(intake.accepted))
        metrics.add_metric(name="MessagesRejected", unit="Count", value=len(intake.problems))
        metrics.add_metric(name="DuplicateMessages", unit="Count", value=duplicates)
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
            if not _same(given, token):
                raise Unauthorised("admin routes need the admin token as a bearer credential")
        elif not (event.request_context.authorizer and event.request_context.authorizer.iam):
            raise Unauthorised("admin routes need IAM authorisation")
        return next_middleware(app)

    @app.get(
        "/v1/leads",
        middlewares=[require_admin],
        responses=_ADMIN_RESPONSES,
        tags=["admin"],
        summary="Find a lead by email",
    )
    def find_lead(email: Annotated[str, Query(min_length=3, max_length=254)]) -> LeadView:
        stored = wiring.ports().leads.find_by_email(email)
        if stored is None:
            raise NotFound("no lead with that email")
        return lead_view(stored, wiring.content().programme(), clock.now())

    @app.get(
        "/v1/leads/<lead_id>",
        middlewares=[require_admin],
        responses=_ADMIN_RESPONSES,
        tags=["admin"],
        summary="A lead's stage, scores with their explanation, transitions and sends",
    )
    def get_lead(lead_id: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_:.-]+$")]) -> LeadView:
        stored = wiring.ports().leads.get(lead_id)
        if stored is None:
            raise NotFound("no lead with that id")
        return lead_view(stored, wiring.content().programme(), clock.now())

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


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document, with the Segment request bodies taken from the same models that parse them."""
    document: dict[str, Any] = (
        build_app(lambda: frozenset())
        .get_openapi_schema(
            title=API_TITLE,
            version=API_VERSION,
            description="Segment-compatible event ingestion and the admin lead routes of the nurture engine.",
        )
        .model_dump(mode="json", by_alias=True, exclude_none=True)
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    # powertools documents its own 422 and error schemas; this API answers a bad parameter with 400 and an ErrorBody.
    for operations in document["paths"].values():
        for operation in operations.values():
            operation["responses"].pop("422", None)
    for unused in ("HTTPValidationError", "ResponseValidationError", "ValidationError"):
        schemas.pop(unused, None)
    for path, model in INGEST_BODIES.items():
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}", by_alias=True)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
        document["paths"][path]["post"]["requestBody"] = {
            "required": True,
            "content": {
                media: {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
                for media in ("application/json", "text/plain")
            },
        }
    return document
