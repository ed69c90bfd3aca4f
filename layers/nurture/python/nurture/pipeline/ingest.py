"""Segment-compatible intake: turn a request body into stored events, or say exactly what is wrong.

Pure apart from the clock value passed in: stamps `receivedAt`, corrects client clock skew the way
Segment does, and validates every message on its own so one bad message in a batch costs only itself.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nurture.domain.messages import Message, as_utc, segment_message
from nurture.pipeline.ports import StoredEvent

MAX_MESSAGE_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
MAX_BATCH_MESSAGES = 2_500
KINDS = ("track", "page", "identify")


class Problem(BaseModel):
    """One thing wrong with a request: where (field, and index within a batch) and what."""

    model_config = ConfigDict(frozen=True)

    field: str
    problem: str
    index: int | None = Field(default=None, description="Position of the message in a batch")


@dataclass
class Intake:
    accepted: list[StoredEvent] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


class Batch(BaseModel):
    """The body of `POST /v1/batch`."""

    batch: list[Message] = Field(max_length=MAX_BATCH_MESSAGES)
    context: dict[str, Any] = Field(default_factory=dict, description="Merged into each message's context")
    sent_at: datetime | None = Field(
        default=None, alias="sentAt", description="When the client sent the batch: a message without its own uses it"
    )
    write_key: str | None = Field(default=None, alias="writeKey")


def parse_body(raw: bytes) -> Any:
    """JSON from a request body, or a Problem. `text/plain` bodies (navigator.sendBeacon) are JSON too."""
    try:
        return json.loads(raw or b"null")
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return Problem(field="body", problem=f"is not valid JSON ({error})")


def read_messages(body: Any, kind: str | None, received_at: datetime) -> Intake:
    """Messages from a `track`/`page`/`identify` body (kind given) or a batch body (kind None)."""
    intake = Intake()
    if not isinstance(body, dict):
        intake.problems.append(Problem(field="body", problem="must be a JSON object"))
        return intake
    if kind is not None:
        _read_one(body, kind, received_at, None, intake)
        return intake
    items = body.get("batch")
    if not isinstance(items, list) or not items:
        intake.problems.append(Problem(field="batch", problem="must be a non-empty list of messages"))
        return intake
    if len(items) > MAX_BATCH_MESSAGES:
        intake.problems.append(Problem(field="batch", problem=f"has more than {MAX_BATCH_MESSAGES} messages"))
        return intake
    shared: dict[str, Any] = body["context"] if isinstance(body.get("context"), dict) else {}
    sent_at = body.get("sentAt")  # Segment's server libraries stamp the batch, not each message
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            intake.problems.append(Problem(field="message", problem="must be a JSON object", index=index))
            continue
        if len(json.dumps(item, default=str).encode()) > MAX_MESSAGE_BYTES:
            intake.problems.append(Problem(field="message", problem="is larger than 32 KB", index=index))
            continue
        own = item.get("context", {})
        # Segment merges the batch's context into each message's; the message's own keys win.
        message = {**item, "context": {**shared, **own} if isinstance(own, dict) else own}
        if sent_at is not None:
            message.setdefault("sentAt", sent_at)
        _read_one(message, item.get("type"), received_at, index, intake)
    return intake


def _read_one(raw: dict[str, Any], kind: Any, received_at: datetime, index: int | None, intake: Intake) -> None:
    if kind not in KINDS:
        intake.problems.append(Problem(field="type", problem=f"must be one of {', '.join(KINDS)}", index=index))
        return
    if raw.get("type", kind) != kind:
        intake.problems.append(Problem(field="type", problem=f"must be '{kind}' on this route", index=index))
        return
    message = {k: v for k, v in raw.items() if k != "writeKey"}
    message["type"] = kind
    message.setdefault("messageId", f"api-{uuid.uuid4()}")  # as Segment does when a library sends none
    problems: list[Problem] = []
    try:
        message["timestamp"] = corrected_timestamp(message, received_at).isoformat()
    except BadInstant as error:
        problems.append(Problem(field=error.field, problem=error.problem, index=index))
        message["timestamp"] = received_at.isoformat()  # so the other fields are still checked
    try:
        parsed = segment_message.validate_python(message)
    except ValidationError as error:
        for item in error.errors():
            loc = [str(part) for part in item["loc"] if part not in KINDS]
            problems.append(
                Problem(
                    field=".".join(loc) or "message", problem=item["msg"].removeprefix("Value error, "), index=index
                )
            )
    if problems:
        intake.problems += problems
        return
    profile_id = parsed.profile_ids[0]
    intake.accepted.append(StoredEvent(profile_id=profile_id, message=parsed, received_at=received_at))


class BadInstant(ValueError):
    """A timestamp field that is not a usable ISO-8601 date-time: named, so the client knows which."""

    def __init__(self, field: str, value: Any, problem: str = "must be an ISO-8601 date-time") -> None:
        self.field = field
        self.problem = f"{problem}, got {value!r}"
        super().__init__(f"{field} {self.problem}")


def corrected_timestamp(message: dict[str, Any], received_at: datetime) -> datetime:
    """When it happened, by the server's clock: Segment's `receivedAt - (sentAt - originalTimestamp)`."""
    name = "originalTimestamp" if message.get("originalTimestamp") else "timestamp"
    original = _instant(message.get(name), name)
    sent_at = _instant(message.get("sentAt"), "sentAt")
    if original is None:
        return received_at
    if sent_at is None:
        return original
    try:
        return received_at - (sent_at - original)
    except OverflowError as error:
        raise BadInstant(name, message.get(name), "is out of range once corrected by sentAt") from error


def _instant(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as error:
        raise BadInstant(name, value) from error
    try:
        return as_utc(parsed)
    except OverflowError as error:  # 9999-12-31T23:00-12:00 is past the end of the calendar in UTC
        raise BadInstant(name, value, "is outside the calendar in UTC") from error
