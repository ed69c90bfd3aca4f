"""The local stack's HTTP front door on 127.0.0.1: API Gateway for the v1 routes, plus `/_local/*` controls.

`/_local/clock` and `/_local/drain` answer only when every effect of the work they ran is visible.
"""

from __future__ import annotations

import json
import math
import re
import threading
from datetime import timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from nurture import constants as c
from nurture.adapters.dynamodb import EventTable
from nurture.domain.email_feedback import CONFIGURATION_SET_TAG, NotAnSesEvent, parse_notification, unwrap_notification
from nurture.domain.messages import TrackMessage, segment_message
from nurture.domain.system_events import SYSTEM_EVENTS, is_system_event
from nurture.pipeline.email_feedback import time_problem
from nurture.pipeline.ingest import EARLIEST, MAX_AHEAD, MAX_DEPTH, Problem, parse_body
from nurture.pipeline.ports import StoredEvent
from nurture.tools.local.lambda_events import http_event
from nurture.tools.local.runtime import LocalStack

MAX_BODY_BYTES = 1024 * 1024
OUTBOX_HTML = re.compile(r"/_local/outbox/(0|[1-9]\d{0,8})\.html")
MAX_ADVANCE = timedelta(days=3660)
# The tracking snippet at /nurture.js, with the headers CloudFront gives it (infra/constructs/snippet.py).
SNIPPET_HEADERS = {
    "content-type": c.SNIPPET_CONTENT_TYPE,
    "cache-control": c.SNIPPET_CACHE_CONTROL,
    "x-content-type-options": "nosniff",
    "cross-origin-resource-policy": "cross-origin",  # any site may load it, even one that isolates itself (COEP)
}


def _advance(body: bytes) -> timedelta | None:
    """How far `POST /_local/clock` asks to move, or None for a body that is not `{"advance_days"|"advance_hours":
    N}` with finite numbers (booleans are not numbers). Out-of-range amounts come back capped just past the limit,
    so the caller answers 400, never a 500 from `timedelta`'s own limits."""
    request = parse_body(body or b"{}")
    if not isinstance(request, dict):
        return None
    hours = 0.0
    for name, unit in (("advance_days", 24.0), ("advance_hours", 1.0)):
        value = request.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        try:
            hours += float(value) * unit
        except OverflowError:  # an integer too large for a float
            hours = math.inf if value > 0 else -math.inf
    if math.isnan(hours):
        return None
    if not math.isfinite(hours) or abs(hours) > MAX_ADVANCE / timedelta(hours=1):
        return MAX_ADVANCE + timedelta(hours=1) if hours > 0 else timedelta(0)
    return timedelta(hours=hours)


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether JSON `value` nests objects and arrays more than `limit` levels (itself being level 1). Walks without
    recursion: depth cannot hurt it, while serialising or validating such a value could raise RecursionError."""
    pending = [(value, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict | list):
            if depth > limit:
                return True
            pending.extend((child, depth + 1) for child in (value.values() if isinstance(value, dict) else value))
    return False


class LocalServer:
    def __init__(self, stack: LocalStack, port: int) -> None:
        self.stack = stack
        handler = type("BoundHandler", (_Handler,), {"stack": stack})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        stack.serve_at(self.url)  # links in emails (unsubscribe) point at this server
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LocalServer:
        self._threads.append(threading.Thread(target=self.httpd.serve_forever, name="http", daemon=True))
        if self.stack.manual is None:  # a real clock: process continuously and tick on the five-minute grid
            self._threads.append(threading.Thread(target=self._background, name="pump", daemon=True))
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _background(self) -> None:
        from nurture.tools.engine import on_dispatch_grid

        next_tick = on_dispatch_grid(self.stack.now())
        while not self._stopping.wait(0.5):
            self.stack.drain()
            if self.stack.now() >= next_tick:
                self.stack.tick()
                next_tick = on_dispatch_grid(self.stack.now() + timedelta(seconds=1))


class _Handler(BaseHTTPRequestHandler):
    stack: LocalStack
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: the command prints what matters

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_OPTIONS(self) -> None:
        self._dispatch("OPTIONS")

    # Every other method goes to the API too, which answers 404 as API Gateway would (http.server's own
    # answer would be an HTML 501: a 5xx for a client's mistake).
    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_TRACE(self) -> None:
        self._dispatch("TRACE")

    def do_QUERY(self) -> None:
        self._dispatch("QUERY")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY_BYTES:
            self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"message": "the body is larger than 1 MB"})
            return
        body = self.rfile.read(length) if length else b""
        try:
            if method in ("GET", "HEAD") and (match := OUTBOX_HTML.fullmatch(url.path)):
                self._outbox_html(int(match.group(1)))
                return
            if method in ("GET", "HEAD") and url.path == c.SNIPPET_PATH:
                snippet = files("nurture").joinpath("static", c.SNIPPET_FILE).read_bytes()
                self._send(int(HTTPStatus.OK), snippet, dict(SNIPPET_HEADERS))
                return
            if url.path.startswith("/_local/"):
                status, payload = self._local(method, url.path, body)
                self._reply(status, payload)
                return
            event = http_event(
                method,
                url.path,
                url.query,
                dict(self.headers.items()),
                body,
                self.stack.now(),
                source_ip=self.client_address[0],
            )
            response = self.stack.invoke("ingest", event)
        except Exception as error:  # a bug, not bad input: say so rather than hang the client
            self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, {"message": f"local stack error: {error}"})
            raise
        raw = response.get("body") or ""
        headers = dict(response.get("headers") or {})
        for name, values in (response.get("multiValueHeaders") or {}).items():
            headers[name] = ", ".join(values)
        self._send(int(response["statusCode"]), raw.encode(), headers)

    def _local(self, method: str, path: str, body: bytes) -> tuple[HTTPStatus, Any]:
        stack = self.stack
        if method == "GET" and path == "/_local/outbox":
            return HTTPStatus.OK, stack.outbox()
        if method == "GET" and path == "/_local/alerts":
            return HTTPStatus.OK, stack.captured.sales_alerts  # as the sales topic delivered them, with values
        if method == "GET" and path == "/_local/metrics":
            return HTTPStatus.OK, {"now": stack.now().isoformat(), "months": stack.metrics()}
        if method == "GET" and path == "/_local/lead-qualified":
            return HTTPStatus.OK, stack.captured.qualified
        if method == "GET" and path == "/_local/stage-changes":
            return HTTPStatus.OK, stack.captured.stage_changes
        if method == "GET" and path == "/_local/dead-letters":
            return HTTPStatus.OK, stack.dead_letters()
        if method == "GET" and path == "/_local/content-rejections":
            return HTTPStatus.OK, stack.content_rejections()
        if method == "POST" and path == "/_local/drain":
            stack.drain()
            return HTTPStatus.OK, {"now": stack.now().isoformat()}
        if method == "POST" and path == "/_local/clock":
            if stack.manual is None:
                return HTTPStatus.CONFLICT, {"message": "the clock is real: start with --clock manual to move it"}
            by = _advance(body)
            if by is None:
                return HTTPStatus.BAD_REQUEST, {"message": 'send {"advance_days": N} or {"advance_hours": N}'}
            if by <= timedelta(0) or by > MAX_ADVANCE:
                return HTTPStatus.BAD_REQUEST, {"message": "advance by a positive amount of at most ten years"}
            return HTTPStatus.OK, {"now": stack.advance(by).isoformat()}
        if method == "POST" and path == "/_local/system-event":
            return self._system_event(body)
        if method == "POST" and path == "/_local/ses-events":
            return self._ses_events(body)
        return HTTPStatus.NOT_FOUND, {"message": f"no local route {method} {path}"}

    def _system_event(self, body: bytes) -> tuple[HTTPStatus, Any]:
        """Store one of the events the public API refuses (`Unsubscribed`, `Email Opened`...), as SES
        feedback or the unsubscribe link will: straight into the events table, to be scored like any other."""
        given = parse_body(body)
        if isinstance(given, Problem) or _deeper_than(given, MAX_DEPTH):
            return HTTPStatus.BAD_REQUEST, {"message": f"the body must be JSON nested at most {MAX_DEPTH} levels"}
        try:
            message = segment_message.validate_python(given)
        except ValidationError as error:
            return HTTPStatus.BAD_REQUEST, {"message": f"not a Segment message: {error.errors()[0]['msg']}"}
        if not (isinstance(message, TrackMessage) and is_system_event(message.event)):
            return HTTPStatus.BAD_REQUEST, {"message": f"send a track message of one of {', '.join(SYSTEM_EVENTS)}"}
        now = self.stack.now()
        if not EARLIEST <= message.timestamp <= now + MAX_AHEAD:  # the bounds the public API applies
            return HTTPStatus.BAD_REQUEST, {"message": "timestamp: must be after 2000 and at most a day ahead"}
        stored = StoredEvent(profile_id=message.profile_ids[0], message=message, received_at=now)
        with self.stack.lock:
            new = EventTable(self.stack.client("dynamodb"), c.EVENTS_TABLE).put(stored)
        return HTTPStatus.OK, {"stored": new}

    def _ses_events(self, body: bytes) -> tuple[HTTPStatus, Any]:
        """Feed SES records to the email-events function the deployed way (default bus, rule, queue): one record, bare
        or as SNS or EventBridge delivers it, or a list of them (published together: one batch, like a scanner's
        burst). Answers once they are stored and scored."""
        given = parse_body(body)
        if isinstance(given, Problem):
            return HTTPStatus.BAD_REQUEST, {"message": f"the body is not JSON we can read: it {given.problem}"}
        bodies = given if isinstance(given, list) else [given]
        if not bodies or len(bodies) > 100:
            return HTTPStatus.BAD_REQUEST, {"message": "send one SES event record, or a list of 1 to 100"}
        records = []
        for i, one in enumerate(bodies):
            where = f"record {i}: " if isinstance(given, list) else ""
            try:
                record = unwrap_notification(one)
                if _deeper_than(record, MAX_DEPTH):  # no SES record is; it could not be published
                    raise NotAnSesEvent(f"it is nested deeper than {MAX_DEPTH} levels")
                event = parse_notification(record)
                problem = time_problem(event, self.stack.now())
                if problem is not None:  # the email-events function would refuse it: say so here
                    raise NotAnSesEvent(problem)
            except NotAnSesEvent as error:
                return HTTPStatus.BAD_REQUEST, {"message": f"{where}not an SES event record: {error}"}
            tags = record.setdefault("mail", {}).setdefault("tags", {})
            # SES tags every email sent through a configuration set with it; the rule picks the stack's by it.
            if tags.setdefault(CONFIGURATION_SET_TAG, [c.SES_CONFIGURATION_SET]) != [c.SES_CONFIGURATION_SET]:
                return HTTPStatus.BAD_REQUEST, {
                    "message": f"{where}mail.tags.{CONFIGURATION_SET_TAG} must be [{c.SES_CONFIGURATION_SET!r}]"
                }
            records.append((record, event))
        ids = {event.message_id for _, event in records}
        before = self.stack.stored_messages(ids)
        self.stack.ses_records([record for record, _ in records])
        self.stack.drain()
        # `stored`: this request stored the lead's message (false: no lead for the email; or it failed, see
        # /_local/dead-letters; or `duplicate`: a record stored before, or earlier in this list, is the same message).
        stored = self.stack.stored_messages(ids) - before
        answers, seen = [], set(before)
        for _, event in records:
            duplicate = event.message_id in seen
            seen.add(event.message_id)
            answers.append(
                {
                    "eventType": event.event_type,
                    "mail": event.mail_id,
                    "messageId": event.message_id,
                    "stored": event.message_id in stored and not duplicate,
                    "duplicate": duplicate,
                }
            )
        return HTTPStatus.OK, {"records": answers}

    def _outbox_html(self, index: int) -> None:
        """The HTML part of the index-th email in `GET /_local/outbox`, to open in a browser."""
        html = self.stack.email_html(index)
        if html is None:
            self._reply(HTTPStatus.NOT_FOUND, {"message": f"no email {index} with an HTML part in the outbox"})
            return
        self._send(int(HTTPStatus.OK), html.encode(), {"content-type": "text/html; charset=utf-8"})

    def _reply(self, status: HTTPStatus, payload: Any) -> None:
        self._send(int(status), json.dumps(payload, default=str).encode(), {"content-type": "application/json"})

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":  # a HEAD answer has the headers of the GET, and no body
            self.wfile.write(body)
