"""`nurture local`'s own routes answer any body a client can send with a 400 saying what is wrong, never a 500:
bodies nested thousands deep (too deep for Python's JSON reader), an SNS envelope whose Message is, bytes that are
not UTF-8, and an otherwise good record carrying a field nested hundreds deep."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.conftest import START, Local
from tests.support import ROOT

pytestmark = pytest.mark.e2e
BODY_ROUTES = ["/_local/clock", "/_local/system-event", "/_local/ses-events"]
NESTED = "[" * 5000 + "]" * 5000


def _deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def _open_record() -> dict[str, Any]:
    """A good SES open record, dated at the stack's clock: what is wrong with a body is only what a case adds."""
    record = dict(json.loads((ROOT / "events" / "ses" / "open.json").read_text()))
    record["mail"]["timestamp"] = record["open"]["timestamp"] = START
    return record


HOSTILE = {
    "array-nested-5000-deep": NESTED.encode(),
    "object-nested-5000-deep": b'{"a": ' * 5000 + b"1" + b"}" * 5000,
    "sns-message-nested-5000-deep": json.dumps({"Type": "Notification", "Message": NESTED}).encode(),
    "not-utf-8": b'\xff\xfe{"advance_days": 1}',
    "ses-record-with-a-field-900-deep": json.dumps(_open_record() | {"junk": _deep(900)}).encode(),
    "sns-record-with-a-field-900-deep": json.dumps(
        {"Type": "Notification", "Message": json.dumps(_open_record() | {"junk": _deep(900)})}
    ).encode(),
    "system-event-with-properties-900-deep": json.dumps(
        {
            "type": "track",
            "event": "Email Opened",
            "userId": "hostile-u",
            "messageId": "hostile-1",
            "timestamp": "2026-01-05T09:00:00Z",
            "properties": {"junk": _deep(900)},
        }
    ).encode(),
}


@pytest.mark.parametrize("route", BODY_ROUTES)
@pytest.mark.parametrize("body", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_body_to_a_local_route_is_a_400_saying_why(local: Local, route: str, body: bytes) -> None:
    status, answer = local.call("POST", route, raw=body)
    assert status == 400, answer
    assert answer["message"]
    assert "recursion" not in answer["message"]


def test_a_local_ses_record_error_names_what_to_send_not_a_class(local: Local) -> None:
    record = _open_record() | {"mail": "not an object"}
    status, answer = local.call("POST", "/_local/ses-events", record)
    assert status == 400
    assert answer["message"] == "not an SES event record: mail: must be a JSON object"


def test_drain_takes_no_body_and_ignores_a_hostile_one(local: Local) -> None:
    status, answer = local.call("POST", "/_local/drain", raw=NESTED.encode())
    assert status == 200
    assert answer["now"]


def test_a_good_system_event_is_still_stored_once(local: Local) -> None:
    opened = {
        "type": "track",
        "event": "Email Opened",
        "userId": "hostile-good-u",
        "messageId": "hostile-good-1",
        "timestamp": START,
    }
    first = local.call("POST", "/_local/system-event", opened)
    again = local.call("POST", "/_local/system-event", opened)
    assert (first, again) == ((200, {"stored": True}), (200, {"stored": False}))


@pytest.mark.parametrize("timestamp", ["9999-12-31T23:59:59Z", "1999-12-31T00:00:00Z", "2026-03-01T00:00:00Z"])
def test_a_system_event_dated_outside_what_the_api_accepts_is_refused(local: Local, timestamp: str) -> None:
    # The API refuses messages before 2000 or more than a day after receipt: so does the local stand-in for SES
    event = {"type": "track", "event": "Email Opened", "userId": "u-late", "messageId": f"late-{timestamp}"}
    status, answer = local.call("POST", "/_local/system-event", {**event, "timestamp": timestamp})
    assert status == 400
    assert answer["message"].startswith("timestamp:")
