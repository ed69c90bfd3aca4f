"""Segment-compatible intake: turn a request body into stored events, or say exactly what is wrong.

Pure apart from the clock value passed in: stamps `receivedAt`, corrects client clock skew the way
Segment does, and validates every message on its own so one bad message in a batch costs only itself.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nurture.domain.messages import CLIENT_INPUT, IdentifyMessage, Message, TrackMessage, as_utc, segment_message
from nurture.domain.system_events import is_system_event
from nurture.domain.tokens import Signer, TokenError
from nurture.pipeline.ports import EventStore, LeadStore, StoredEvent

MAX_MESSAGE_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
MAX_BATCH_MESSAGES = 2_500
MAX_DEPTH = 32  # levels of objects and arrays in one message, the message itself being level 1
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # nothing this engine scores happened before
MAX_AHEAD = timedelta(days=1)  # how far past its receipt a message may say it happened (after skew correction)
KINDS = ("track", "page", "identify")
# Where an identify carries the signed token of the email link the visitor arrived by (nurture.js puts it there).
CLICK_TOKEN_FIELD = "context.nurture.click_token"  # noqa: S105
# The userId an email click gives a lead that has none, so a visitor can be linked to it: no website may send one.
CLICK_USER_PREFIX = "nurture:lead:"


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
    """JSON from a request body, or a Problem. `text/plain` bodies (navigator.sendBeacon) are JSON too.

    UTF-8 only, as JSON on the wire must be (RFC 8259); a leading byte-order mark is tolerated.
    """
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        return Problem(field="body", problem=f"must be JSON encoded as UTF-8 (byte {error.start} is not UTF-8)")
    try:
        return json.loads(text or "null")
    except json.JSONDecodeError as error:
        return Problem(field="body", problem=f"is not valid JSON ({error})")
    except RecursionError:  # hundreds of levels: far past MAX_DEPTH, and too deep to read at all
        return Problem(field="body", problem=f"is nested deeper than {MAX_DEPTH} levels")


@dataclass(frozen=True)
class ClickLinks:
    """Ties the visitor of an identify carrying a click token (`context.nurture.click_token`) to the lead the
    token was signed for, when the token is one this stack signed for a click and has not expired.

    The identify is stored under the lead's userId (so identity resolution folds the visitor's anonymous history
    into the lead, as for any identify naming both ids) without the token, a credential, and with the lead's id
    as `context.nurture.click_lead_id`. A lead with no userId gets one first: an identify naming
    `nurture:lead:<lead id>` and one of the lead's anonymousIds, a millisecond earlier, stored here before the
    visitor's, under the same profile, so the scorer reads it first (the stream keeps one key's order). An identify
    that names its own userId is the website's word on who the visitor is: the token is dropped, nothing linked."""

    signer: Signer
    leads: LeadStore
    events: EventStore

    def link(self, message: IdentifyMessage, token: Any, now: datetime) -> IdentifyMessage | str:
        """The message to store in place of `message`, or what is wrong with the token (then nothing is linked)."""
        if not isinstance(token, str):
            return "must be a string: the `nt` parameter of the email link"
        try:
            lead_id = self.signer.verify(token, "click", now)
        except TokenError as error:
            return f"is not a valid email click token ({error}): the visitor was not linked to any lead"
        if message.user_id is not None:
            return message
        stored = self.leads.get(lead_id)
        if stored is None or not stored.profiles:
            return "was signed for a lead that no longer exists: the visitor was not linked to any lead"
        context = {**message.context, "nurture": {"click_lead_id": lead_id}}
        users = sorted(p for p in stored.profiles if p.startswith("u#"))
        if users:
            return message.model_copy(update={"user_id": users[0][2:], "context": context})
        user_id = f"{CLICK_USER_PREFIX}{lead_id}"
        first = IdentifyMessage(
            type="identify",
            message_id=f"click-user-{lead_id}",  # one per lead: a second click stores nothing new
            user_id=user_id,
            anonymous_id=min(stored.profiles)[2:],
            timestamp=message.timestamp - timedelta(milliseconds=1),
            context={"nurture": {"click_lead_id": lead_id}},
        )
        self.events.put(StoredEvent(profile_id=first.profile_ids[0], message=first, received_at=now))
        return message.model_copy(update={"user_id": user_id, "context": context})


def _click_token(message: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """The message without `context.nurture.click_token`, and the token (None when absent). A client's own
    `click_lead_id` goes too: stored, it means a verified token. Copies what it changes: a batch's shared
    context is the same object in every message."""
    context = message.get("context")
    if not isinstance(context, dict) or not isinstance(context.get("nurture"), dict):
        return message, None
    if not {"click_token", "click_lead_id"} & context["nurture"].keys():
        return message, None
    nurture = dict(context["nurture"])
    token = nurture.pop("click_token", None)
    nurture.pop("click_lead_id", None)
    rest = {k: v for k, v in context.items() if k != "nurture"}
    return {**message, "context": {**rest, **({"nurture": nurture} if nurture else {})}}, token


def read_messages(body: Any, kind: str | None, received_at: datetime, clicks: ClickLinks | None = None) -> Intake:
    """Messages from a `track`/`page`/`identify` body (kind given) or a batch body (kind None).

    With `clicks`, an identify's click token links the visitor to the lead it was signed for (`ClickLinks`);
    without, the token is dropped. A token is never stored, on any message."""
    intake = Intake()
    if not isinstance(body, dict):
        intake.problems.append(Problem(field="body", problem="must be a JSON object"))
        return intake
    if kind is not None:
        unsound = _unsound(body, None)
        intake.problems += unsound.values()
        if not unsound:
            _read_one(body, kind, received_at, None, intake, clicks)
        return intake
    items = body.get("batch")
    if not isinstance(items, list) or not items:
        intake.problems.append(Problem(field="batch", problem="must be a non-empty list of messages"))
        return intake
    if len(items) > MAX_BATCH_MESSAGES:
        intake.problems.append(Problem(field="batch", problem=f"has more than {MAX_BATCH_MESSAGES} messages"))
        return intake
    shared: dict[str, Any] = body["context"] if isinstance(body.get("context"), dict) else {}
    # Walked once, not once per message it is merged into: a big shared context would cost that many times over.
    shared_unsound = _unsound(shared, None, ("context",), depth=2)
    sent_at = body.get("sentAt")  # Segment's server libraries stamp the batch, not each message
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            intake.problems.append(Problem(field="message", problem="must be a JSON object", index=index))
            continue
        own = item.get("context", {})
        # Segment merges the batch's context into each message's; the message's own keys win.
        message = {**item, "context": {**shared, **own} if isinstance(own, dict) else own}
        if sent_at is not None:
            message.setdefault("sentAt", sent_at)
        unsound = _unsound(item, index)
        for top, problem in shared_unsound.items():
            unsound.setdefault(top, problem.model_copy(update={"index": index}))
        if unsound:
            intake.problems += unsound.values()
            continue
        if len(json.dumps(item, default=str).encode()) > MAX_MESSAGE_BYTES:
            intake.problems.append(Problem(field="message", problem="is larger than 32 KB", index=index))
            continue
        _read_one(message, item.get("type"), received_at, index, intake, clicks)
    return intake


def _unsound(
    value: dict[str, Any], index: int | None, path: tuple[str, ...] = (), depth: int = 1
) -> dict[str, Problem]:
    """What keeps a message's JSON from being stored and read back, by top-level field (the first problem of
    each, in the document's order): nesting deeper than MAX_DEPTH levels (serialising it fails), numbers
    that are not finite (NaN and 1e999 would be stored as null) and text with a lone surrogate (`"\\ud800"`
    is valid JSON but no Unicode: it cannot be written as UTF-8). Walks without recursion: depth cannot hurt it."""
    found: dict[str, Problem] = {}
    pending: list[tuple[Any, tuple[str, ...], int]] = [(value, path, depth)]
    while pending:
        value, path, depth = pending.pop()
        top = path[0] if path else "message"
        if top in found:
            continue
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                found[top] = Problem(field=top, problem=f"is nested deeper than {MAX_DEPTH} levels", index=index)
                continue
            if isinstance(value, dict) and not all(_unicode(key) for key in value):
                found[top] = Problem(field=".".join(path) or top, problem=_NOT_UNICODE_KEY, index=index)
                continue
            children = list(value.items() if isinstance(value, dict) else enumerate(value))
            # Reversed onto the stack, so the walk (and the problem reported) follows the document's order.
            pending.extend((child, (*path, str(key)), depth + 1) for key, child in reversed(children))
        elif isinstance(value, float) and not math.isfinite(value):
            found[top] = Problem(
                field=".".join(path),
                problem=f"must be a finite number, got {value} (NaN, Infinity or too large for a double)",
                index=index,
            )
        elif isinstance(value, str) and not _unicode(value):
            found[top] = Problem(field=".".join(path), problem=_NOT_UNICODE, index=index)
    return found


_NOT_UNICODE = "must be Unicode text: it has a lone surrogate escape (such as \\ud800)"
_NOT_UNICODE_KEY = "has a key that is not Unicode text: a lone surrogate escape (such as \\ud800)"


def _unicode(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _read_one(
    raw: dict[str, Any],
    kind: Any,
    received_at: datetime,
    index: int | None,
    intake: Intake,
    clicks: ClickLinks | None = None,
) -> None:
    if kind not in KINDS:
        intake.problems.append(Problem(field="type", problem=f"must be one of {', '.join(KINDS)}", index=index))
        return
    if raw.get("type", kind) != kind:
        intake.problems.append(Problem(field="type", problem=f"must be '{kind}' on this route", index=index))
        return
    message, token = _click_token({k: v for k, v in raw.items() if k != "writeKey"})
    message["type"] = kind
    message.setdefault("messageId", f"api-{uuid.uuid4()}")  # as Segment does when a library sends none
    problems: list[Problem] = []
    try:
        message["timestamp"] = corrected_timestamp(message, received_at).isoformat()
    except BadInstant as error:
        problems.append(Problem(field=error.field, problem=error.problem, index=index))
        message["timestamp"] = received_at.isoformat()  # so the other fields are still checked
    try:
        parsed = segment_message.validate_python(message, context=CLIENT_INPUT)
    except ValidationError as error:
        for item in error.errors():
            loc = [str(part) for part in item["loc"] if part not in KINDS]
            problems.append(
                Problem(
                    field=".".join(loc) or "message", problem=item["msg"].removeprefix("Value error, "), index=index
                )
            )
        intake.problems += problems
        return
    if isinstance(parsed, TrackMessage) and is_system_event(parsed.event):
        # Only the public API refuses them: the model accepts them, for the engine's own sources.
        problems.append(
            Problem(
                field="event",
                problem=f"{parsed.event!r} is reserved for the engine itself (SES feedback and the unsubscribe "
                "link record it); a website cannot send it",
                index=index,
            )
        )
    if parsed.user_id is not None and parsed.user_id.startswith(CLICK_USER_PREFIX):
        problems.append(
            Problem(
                field="userId",
                problem=f"must not start with {CLICK_USER_PREFIX!r}: those ids are given by email links",
                index=index,
            )
        )
    linked: Message | str = parsed
    if token is not None and clicks is not None and isinstance(parsed, IdentifyMessage) and not problems:
        linked = clicks.link(parsed, token, received_at)
    if isinstance(linked, str):
        problems.append(Problem(field=CLICK_TOKEN_FIELD, problem=linked, index=index))
    if problems or isinstance(linked, str):
        intake.problems += problems
        return
    intake.accepted.append(StoredEvent(profile_id=linked.profile_ids[0], message=linked, received_at=received_at))


class BadInstant(ValueError):
    """A timestamp field that is not a usable ISO-8601 date-time: named, so the client knows which."""

    def __init__(self, field: str, value: Any, problem: str = "must be an ISO-8601 date-time") -> None:
        self.field = field
        # Only scalars are shown (shortened): the repr of a deeply nested value could itself fail.
        shown = repr(value) if isinstance(value, str | int | float | bool) else f"a {type(value).__name__}"
        self.problem = f"{problem}, got {shown if len(shown) <= 80 else shown[:77] + '...'}"
        super().__init__(f"{field} {self.problem}")


def corrected_timestamp(message: dict[str, Any], received_at: datetime) -> datetime:
    """When it happened, by the server's clock: Segment's `receivedAt - (sentAt - originalTimestamp)`."""
    name = "originalTimestamp" if message.get("originalTimestamp") else "timestamp"
    original = _instant(message.get(name), name)
    sent_at = _instant(message.get("sentAt"), "sentAt")
    if original is None:
        return received_at
    if sent_at is None:
        corrected, how = original, ""
    else:
        try:
            corrected, how = received_at - (sent_at - original), " once corrected by sentAt"
        except OverflowError as error:
            raise BadInstant(name, message.get(name), "is out of range once corrected by sentAt") from error
    # Dates the journey would compute with (a send time, a timeout) must stay inside the calendar.
    if corrected > received_at + MAX_AHEAD:
        raise BadInstant(name, message.get(name), f"must not be more than a day after the API received it{how}")
    if corrected < EARLIEST:
        raise BadInstant(name, message.get(name), f"must not be before 2000-01-01{how}")
    return corrected


def _instant(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):  # a number or an object is no date-time (and str() of a deep one could fail)
        raise BadInstant(name, value)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as error:
        raise BadInstant(name, value) from error
    try:
        return as_utc(parsed)
    except OverflowError as error:  # 9999-12-31T23:00-12:00 is past the end of the calendar in UTC
        raise BadInstant(name, value, "is outside the calendar in UTC") from error
