"""One-click unsubscribe (RFC 8058): the route every email's `List-Unsubscribe` header points at.

`POST /v1/unsubscribe?token=…` opts the lead out at once, whatever the body (mail clients send
`List-Unsubscribe=One-Click`); `GET` only shows a page with a button that POSTs, because corporate link
scanners fetch every link in an email and must never unsubscribe anyone. The signed token is the only
credential: a forged, tampered, wrong-purpose or expired one gets 400 and changes nothing.
"""

from __future__ import annotations

import html
from datetime import datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.types import (
    OpenAPIResponse,
    OpenAPIResponseContentModel,
    OpenAPIResponseContentSchema,
)

from nurture.constants import UNSUBSCRIBE_PATH
from nurture.domain.journey import UNSUBSCRIBED
from nurture.domain.messages import TrackMessage
from nurture.domain.tokens import MAX_TOKEN_LENGTH, TokenError
from nurture.pipeline.ports import Ports, StoredEvent
from nurture.runtime import clock, wiring
from nurture.runtime.observability import logger

HTML = "text/html; charset=utf-8"
# How the OpenAPI document names what these routes answer.
_PAGE: dict[str, OpenAPIResponseContentSchema | OpenAPIResponseContentModel] = {
    "text/html": OpenAPIResponseContentSchema(schema={"type": "string"})
}
# The token is in the URL: keep the page out of caches, search engines and other sites' Referer headers, and let it
# run nothing and post only to this API.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
}
INVALID = "This unsubscribe link is not valid"
INVALID_TEXT = (
    "The link is incomplete, altered or more than a year old. Use the unsubscribe link in our latest email, "
    "or reply to it and ask to be removed."
)
_PAGE_RESPONSES: dict[int, OpenAPIResponse] = {
    400: {
        "description": "The token is missing, forged, tampered with, for another purpose or expired: nothing changed",
        "content": _PAGE,
    },
    404: {
        "description": "A valid token for a lead that no longer exists: nothing changed",
        "content": _PAGE,
    },
}


def document(operations: dict[str, Any]) -> None:
    """Complete the OpenAPI operations of the route (validation is off, so powertools cannot see the token)."""
    token = {
        "name": "token",
        "in": "query",
        "required": True,
        "description": "The signed token from the email's List-Unsubscribe header or unsubscribe link",
        "schema": {"type": "string", "maxLength": MAX_TOKEN_LENGTH},
    }
    for operation in operations.values():
        operation["parameters"] = [token]
    operations["post"]["requestBody"] = {
        "required": False,
        "description": "Any body is accepted; RFC 8058 mail clients send `List-Unsubscribe=One-Click`",
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {"List-Unsubscribe": {"type": "string", "const": "One-Click"}},
                }
            }
        },
    }


def opt_out(lead_id: str, ports: Ports, now: datetime) -> bool:
    """Record that the lead unsubscribed: an `Unsubscribed` event in the events table, scored like any other
    message, so the scorer moves the lead to `opted_out` and publishes that once. Its messageId is the lead's, so
    a repeated click stores nothing new. False when the lead no longer exists."""
    stored = ports.leads.get(lead_id)
    if stored is None or not stored.profiles:
        return False
    # The lead's userId profile when it has one: the one every later message of the person resolves through.
    profile = min(stored.profiles, key=lambda p: (not p.startswith("u#"), p))
    who = "userId" if profile.startswith("u#") else "anonymousId"
    message = TrackMessage.model_validate(
        {
            "type": "track",
            "event": UNSUBSCRIBED,
            "messageId": f"unsubscribe-{lead_id}",
            who: profile[2:],
            "timestamp": now,
            "properties": {"method": "one-click"},
        }
    )
    ports.events.put(StoredEvent(profile_id=profile, message=message, received_at=now))
    return True


def register(app: APIGatewayHttpResolver) -> None:
    """Add `GET` and `POST /v1/unsubscribe` to the API. No write key: the signed token is the credential.
    Validation is off for both: a bad token must get this module's page, never powertools' JSON 422 or a 5xx."""

    def token_of() -> str:
        # API Gateway (HTTP API) joins a repeated parameter's values with commas: never a valid token.
        return app.current_event.get_query_string_value("token", "") or ""

    def lead_of(token: str) -> str | None:
        try:
            return wiring.ports().signer.verify(token, "unsubscribe", clock.now())
        except TokenError:
            return None

    @app.get(
        UNSUBSCRIBE_PATH,
        enable_validation=False,
        tags=["unsubscribe"],
        summary="The unsubscribe confirmation page: a button that POSTs; changes nothing",
        responses={
            200: {
                "description": "A page with a button that POSTs to the same URL (link scanners fetch links)",
                "content": _PAGE,
            },
            400: _PAGE_RESPONSES[400],
        },
    )
    def confirm_unsubscribe() -> Response[str]:
        token = token_of()
        if lead_of(token) is None:
            return _page(HTTPStatus.BAD_REQUEST, INVALID, INVALID_TEXT)
        form = (
            f'<form method="post" action="?token={html.escape(quote(token, safe=""))}">'
            '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
            '<button type="submit">Unsubscribe</button></form>'
        )
        return _page(
            HTTPStatus.OK,
            "Unsubscribe from these emails?",
            "Press the button and we will send you no more of these emails.",
            form,
        )

    @app.post(
        UNSUBSCRIBE_PATH,
        enable_validation=False,
        tags=["unsubscribe"],
        summary="One-click unsubscribe (RFC 8058): the lead is opted out at once, whatever the body",
        responses={
            200: {
                "description": "The lead is opted out (or already was): no more nurture email",
                "content": _PAGE,
            },
            **_PAGE_RESPONSES,
        },
    )
    def unsubscribe() -> Response[str]:
        lead_id = lead_of(token_of())
        if lead_id is None:
            return _page(HTTPStatus.BAD_REQUEST, INVALID, INVALID_TEXT)
        if not opt_out(lead_id, wiring.ports(), clock.now()):
            logger.warning("unsubscribe for a lead that no longer exists", extra={"lead_id": lead_id})
            return _page(
                HTTPStatus.NOT_FOUND,
                "We could not find this subscription",
                "If you still get email from us, reply to it and ask to be removed.",
            )
        logger.info("lead unsubscribed (one-click)", extra={"lead_id": lead_id})
        return _page(HTTPStatus.OK, "You're unsubscribed", "You will get no more of these emails from us.")


def _page(status: HTTPStatus, title: str, text: str, extra: str = "") -> Response[str]:
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title, quote=False)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;"
        "line-height:1.5;color:#1a1a1a}button{font:inherit;padding:.6rem 1.4rem;border-radius:.3rem;"
        "border:1px solid #1a1a1a;background:#1a1a1a;color:#fff;cursor:pointer}</style></head>"
        f"<body><h1>{html.escape(title, quote=False)}</h1><p>{html.escape(text, quote=False)}</p>{extra}</body></html>"
    )
    headers: dict[str, Any] = dict(PAGE_HEADERS)
    return Response(status_code=int(status), content_type=HTML, body=body, headers=headers)
