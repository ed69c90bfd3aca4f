"""The OpenAPI document, generated from the routes and the pydantic models that parse the requests."""

from __future__ import annotations

from typing import Any

from nurture.api import sales, unsubscribe
from nurture.api.resolver import API_TITLE, API_VERSION, INGEST_BODIES, build_app
from nurture.constants import UNSUBSCRIBE_PATH
from nurture.domain.system_events import SYSTEM_EVENTS

MESSAGE_SCHEMAS = ("TrackMessage", "PageMessage", "IdentifyMessage")
# The API fills these in when a client leaves them out (Segment's libraries always send them).
FILLED_IN = ("messageId", "timestamp")


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document, with the Segment request bodies taken from the same models that parse them."""
    document: dict[str, Any] = (
        build_app(lambda: frozenset(), cors_origins=())
        .get_openapi_schema(
            title=API_TITLE,
            version=API_VERSION,
            description="Segment-compatible event ingestion, the admin lead routes and one-click unsubscribe "
            "(RFC 8058) of the nurture engine.",
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
    for model in INGEST_BODIES.values():
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}", by_alias=True)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    # The message model accepts the engine's own events (replay feeds them); the public API refuses them.
    event = schemas["TrackMessage"]["properties"]["event"]
    event["not"] = {"enum": list(SYSTEM_EVENTS)}
    event["description"] = "Not one of the events only the engine records (in any case): " + ", ".join(SYSTEM_EVENTS)
    for name in MESSAGE_SCHEMAS:
        schemas[name]["required"] = [r for r in schemas[name]["required"] if r not in FILLED_IN]
        # Someone sent it: a userId or an anonymousId, as the message model checks.
        schemas[name]["anyOf"] = [
            {"required": [who], "properties": {who: {"type": "string"}}} for who in ("userId", "anonymousId")
        ]
    schemas["Batch"]["properties"]["batch"]["minItems"] = 1
    for path, model in INGEST_BODIES.items():
        name = model.__name__
        if name in MESSAGE_SCHEMAS:
            # On /v1/track, /v1/page and /v1/identify the route says the type; in a batch each message must.
            body = f"{name}Body"
            schemas[body] = {**schemas[name], "title": body}
            schemas[body]["required"] = [r for r in schemas[name]["required"] if r != "type"]
            name = body
        document["paths"][path]["post"]["requestBody"] = {
            "required": True,
            "content": {
                media: {"schema": {"$ref": f"#/components/schemas/{name}"}}
                for media in ("application/json", "text/plain")
            },
        }
    unsubscribe.document(document["paths"][UNSUBSCRIBE_PATH])
    schemas["SalesStatusBody"] = sales.SalesStatusBody.model_json_schema()
    sales.document(document["paths"][sales.SALES_STATUS_PATH])
    return document
