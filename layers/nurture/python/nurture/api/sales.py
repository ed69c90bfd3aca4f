"""`POST /v1/leads/{lead_id}/sales-status`: sales says which leads were real (admin credential).

The body is `{"status": ..., "amount": ..., "reason": ...}`. `accepted`, `engaged`, `demo_booked`, `opportunity`
and `won` mean sales has the lead: nurture email stops (`sales_engaged`, published once). `rejected` and `lost` are
recorded and nurture goes on. Every status is kept with its time (`sales_history` in the lead view) for the monthly
review. A bad status, amount or lead id is a 400 naming the field; a body over 4 KB a 413; an unknown lead a 404.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from nurture.api.errors import ApiError, NotFound, TooLarge
from nurture.api.views import LeadView
from nurture.domain.journey import SalesStatus, SalesUpdate
from nurture.pipeline.ingest import Problem, parse_body
from nurture.pipeline.leads import LeadService
from nurture.pipeline.ports import StoredLead
from nurture.runtime import clock, wiring

MAX_BODY_BYTES = 4096
SALES_STATUS_ROUTE = "/v1/leads/<lead_id>/sales-status"
SALES_STATUS_PATH = "/v1/leads/{lead_id}/sales-status"
LEAD_ID_PATTERN = re.compile(r"[A-Za-z0-9_:.-]{1,64}")
NEEDS_AMOUNT = frozenset({"opportunity", "won"})
NEEDS_REASON = frozenset({"rejected"})


class SalesStatusBody(BaseModel):
    """What sales says of a lead."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: SalesStatus = Field(description="accepted, rejected, engaged, demo_booked, opportunity, won or lost")
    amount: float | None = Field(
        default=None,
        ge=0,
        le=1_000_000_000_000,
        description="The deal's amount, a JSON number: required for opportunity and won, refused for other statuses",
    )
    reason: str | None = Field(
        default=None, min_length=1, max_length=500, description="Why: required for rejected, optional otherwise"
    )

    @field_validator("amount", mode="before")
    @classmethod
    def _a_number(cls, value: Any) -> Any:
        # Not pydantic's lax float: it takes `true` as 1.0 and `"24000"` as 24000.0.
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ValueError("must be a JSON number, not a string or a boolean")
        return value

    @field_validator("amount")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @field_validator("reason")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and any(ord(ch) < 32 and ch not in "\t\n" for ch in value):
            raise ValueError("must not contain control characters")
        return value


def read_body(raw: str | None, encoded: bool | None) -> SalesStatusBody:
    """The request's body as a `SalesStatusBody`, or an ApiError (400) naming each bad field."""
    try:
        data = base64.b64decode(raw or "") if encoded else (raw or "").encode()
    except ValueError as error:
        raise ApiError(
            "the body could not be decoded", [Problem(field="body", problem="could not be decoded")]
        ) from error
    if len(data) > MAX_BODY_BYTES:
        raise TooLarge(f"the body is {len(data):,} bytes; the limit is {MAX_BODY_BYTES:,}")
    body = parse_body(data)
    if isinstance(body, Problem):
        raise ApiError("the body is not valid JSON", [body])
    if not isinstance(body, dict):  # pydantic's own words would name the model's class
        raise ApiError("the body must be a JSON object", [Problem(field="body", problem="must be a JSON object")])
    try:
        update = SalesStatusBody.model_validate(body)
    except ValidationError as error:
        problems = [
            Problem(field=".".join(str(p) for p in e["loc"]) or "body", problem=e["msg"].removeprefix("Value error, "))
            for e in error.errors()
        ]
        raise ApiError("the sales status is not valid", problems) from error
    if update.status in NEEDS_AMOUNT and update.amount is None:
        missing = Problem(field="amount", problem=f"`{update.status}` needs the deal's amount")
        raise ApiError("the sales status is not valid", [missing])
    if update.status not in NEEDS_AMOUNT and update.amount is not None:
        extra = Problem(field="amount", problem=f"`{update.status}` takes no amount: only opportunity and won do")
        raise ApiError("the sales status is not valid", [extra])
    if update.status in NEEDS_REASON and update.reason is None:
        missing = Problem(field="reason", problem=f"`{update.status}` needs a reason: what was wrong with the lead")
        raise ApiError("the sales status is not valid", [missing])
    return update


def register(
    app: APIGatewayHttpResolver,
    require_admin: Callable[..., Response[Any]],
    admin_view: Callable[[StoredLead], LeadView],
    responses: dict[int, Any],
) -> None:
    # Validation off: the body is read here (`read_body`), so any body is a 400 by field, never a 5xx (powertools'
    # own JSON parsing fails on a body nested thousands deep). docs/openapi.json gets the body from `document`.
    @app.post(
        SALES_STATUS_ROUTE,
        middlewares=[require_admin],
        responses=responses,
        tags=["admin"],
        summary="Record what sales says of a lead (accepted, rejected, engaged, demo booked, opportunity, won, lost)",
        enable_validation=False,
    )
    def sales_status(lead_id: str) -> Response[Any]:
        event = app.current_event
        if not LEAD_ID_PATTERN.fullmatch(lead_id):  # as GET and DELETE /v1/leads/{lead_id} answer
            bad = Problem(field="lead_id", problem="must be 1 to 64 letters, digits, or `_`, `:`, `.`, `-`")
            raise ApiError("the request is not valid", [bad])
        update = read_body(event.body, event.is_base64_encoded)
        ports = wiring.ports()
        if ports.leads.get(lead_id) is None:
            raise NotFound("no lead with that id")
        given = SalesUpdate(status=update.status, amount=update.amount, reason=update.reason)
        stored = LeadService(ports, wiring.content().programme()).apply(lead_id, [given], clock.now())
        if stored is None:
            raise NotFound("no lead with that id")
        return Response(
            status_code=200,
            content_type=content_types.APPLICATION_JSON,
            body=admin_view(stored).model_dump(mode="json"),
        )


def document(operations: dict[str, Any]) -> None:
    """Complete the route's OpenAPI operation (validation is off, so powertools cannot see its body or answer)."""
    operation = operations["post"]
    operation["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SalesStatusBody"}}},
    }
    operation["parameters"] = [
        {
            "name": "lead_id",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9_:.-]+$"},
        }
    ]
    operation["responses"]["200"] = {
        "description": "The lead as it is now, with the status recorded",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/LeadView"}}},
    }
    operation["responses"]["413"] = {
        "description": f"A body over {MAX_BODY_BYTES:,} bytes",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }
