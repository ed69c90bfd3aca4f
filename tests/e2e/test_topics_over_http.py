"""Tracks by topic through the deployed path: the dispatcher's tick chooses a lead's next email by what the lead read
(the email's front matter `topics`), so a webinar attendee is sent the webinar email first, as SES receives it."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import Local


def test_a_webinar_attendee_is_sent_the_webinar_email_first_in_consideration(local: Local) -> None:
    now = local.drain()
    email = "wendy@fabrikam.example"
    local.send("identify", {"userId": "u-wendy", "traits": {"email": email}, "timestamp": now})
    interest: list[tuple[str, dict[str, Any]]] = [
        ("track", {"event": "Webinar Attended"}),
        ("page", {"properties": {"path": "/pricing"}}),
        ("track", {"event": "Case Study Downloaded"}),
    ]
    for i, (kind, body) in enumerate(interest):
        local.send(kind, {"userId": "u-wendy", "messageId": f"wendy-{i}", **body})
    local.drain()
    assert local.lead(email)["stage"] == "consideration"

    local.advance(1)

    consideration = [m for m in local.outbox(email) if m["sequence"] == "consideration"]
    assert [m["content_id"] for m in consideration] == ["consideration-07-after-the-webinar"]
