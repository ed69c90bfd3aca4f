"""Nothing the ingest API accepts can break a lead's journey: whatever timestamps and numbers a client sends,
the messages the API lets through run through the journey (`step`, as the scorer applies them) and the
in-memory engine (as `nurture replay` does), ticks years later included, without an error."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from nurture.domain.journey import Lead, Tick, new_lead, step
from nurture.domain.messages import Message
from nurture.pipeline.ingest import Problem, parse_body, read_messages
from nurture.tools.engine import Engine
from tests.support import T0, starter

USERS = ("u-1", "u-2")
_any_instant = st.one_of(
    st.datetimes(timezones=st.none() | st.timezones()),  # mostly refused: outside 2000 .. a day after receipt
    st.datetimes(min_value=datetime(1999, 12, 31), max_value=datetime(2100, 1, 3), timezones=st.timezones()),
).map(lambda d: d.isoformat())
_received = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))
_number = (
    st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([10**7, 10**7 + 1, -1, 1e308, -1e308, 5e-324])
)
_common = {
    "userId": st.sampled_from(USERS),
    "messageId": st.sampled_from([f"m-{n}" for n in range(6)]),
}
_optional = {"timestamp": _any_instant, "originalTimestamp": _any_instant, "sentAt": _any_instant}
_message = st.one_of(
    st.fixed_dictionaries(
        {
            "type": st.just("page"),
            "properties": st.fixed_dictionaries(
                {"path": st.sampled_from(["/pricing", "/blog/a", "/product/x"]), "n": _number}
            ),
            **_common,
        },
        optional=_optional,
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("track"),
            "event": st.sampled_from(["Demo Requested", "Case Study Downloaded", "Email Opened", "Unsubscribed"]),
            "properties": st.dictionaries(st.sampled_from(["amount", "plan"]), _number, max_size=2),
            **_common,
        },
        optional=_optional,
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("identify"),
            "traits": st.fixed_dictionaries(
                {"email": st.sampled_from(["ada@northwind.example", "bo@gmail.com"])},
                optional={
                    "company_size": _number,
                    "seniority": st.sampled_from(["vp", "ic"]),
                    "timezone": st.sampled_from(["Europe/Berlin", "Pacific/Kiritimati", "Etc/GMT+12"]),
                    "country": st.sampled_from(["DE", "US"]),
                },
            ),
            **_common,
        },
        optional=_optional,
    ),
)


def accepted(items: list[dict[str, Any]], received_at: datetime) -> list[Message]:
    """What the API would store of this batch, sent as JSON text (NaN and Infinity as Python writes them)."""
    body = parse_body(json.dumps({"batch": items}).encode())
    assert not isinstance(body, Problem)
    return [event.message for event in read_messages(body, None, received_at).accepted]


@settings(max_examples=150, deadline=None)
@given(items=st.lists(_message, min_size=1, max_size=6), received_at=_received)
@example(  # the issue: a lead in Decision, then a page view dated 9999-12-25, then anything
    items=[
        {"type": "identify", "userId": "u-1", "messageId": "m-0", "traits": {"email": "ada@northwind.example"}},
        {"type": "track", "userId": "u-1", "messageId": "m-1", "event": "Demo Requested"},
        {"type": "page", "userId": "u-1", "messageId": "m-2", "timestamp": "9999-12-25T00:00:00Z"},
        {"type": "page", "userId": "u-1", "messageId": "m-3", "properties": {"path": "/pricing"}},
    ],
    received_at=T0,
)
@example(
    items=[
        {"type": "identify", "userId": "u-1", "messageId": "m-0", "traits": {"email": "ada@northwind.example"}},
        {"type": "page", "userId": "u-1", "messageId": "m-1", "timestamp": "0001-01-01T00:00:00Z"},
    ],
    received_at=T0,
)
def test_nothing_the_api_accepts_makes_the_journey_fail(items: list[dict[str, Any]], received_at: datetime) -> None:
    programme = starter()
    messages = accepted(items, received_at)
    # As the scorer applies them: in arrival order, at the time they arrive, then ticks long after
    leads: dict[str, Lead] = {}
    for message in messages:
        lead_id = message.user_id or ""
        leads[lead_id] = step(leads.get(lead_id, new_lead(lead_id)), message, programme, received_at).lead
    for lead in leads.values():
        for later in (0, 1, 15, 91, 400, 3 * 365):
            lead = step(lead, Tick(), programme, received_at + timedelta(days=later)).lead
            due = lead.next_action_at(programme)
            if due is not None:
                lead = step(lead, Tick(), programme, due).lead
    # As `nurture replay` does: in time order, the dispatcher ticking in between
    Engine(programme).run(messages, until=received_at + timedelta(days=3 * 365))
