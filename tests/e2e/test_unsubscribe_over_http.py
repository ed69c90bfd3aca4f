"""One-click unsubscribe over real HTTP against `nurture local --clock manual`: the token comes from the
List-Unsubscribe header of the email SES received, as a mail client would read it."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.e2e.conftest import Local

pytestmark = pytest.mark.e2e
EMAIL = "cy@northwind.example"
USER = "u-cy"
ONE_CLICK = b"List-Unsubscribe=One-Click"
FORM = {"content-type": "application/x-www-form-urlencoded"}


def fetch(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """Status, content type and text of any answer (these routes answer HTML, not JSON)."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, answer.headers.get("content-type", ""), answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("content-type", ""), error.read().decode()


def outbox_of(local: Local) -> list[tuple[int, dict[str, object]]]:
    """The lead's emails with their index in the whole outbox (the index `/_local/outbox/{index}.html` takes)."""
    status, everything = local.call("GET", "/_local/outbox")
    assert status == 200
    return [(i, m) for i, m in enumerate(everything) if m["to"] == EMAIL]


def stage_changes_to_opted_out(local: Local, lead_id: str) -> list[dict[str, object]]:
    changes = local.call("GET", "/_local/stage-changes")[1]
    return [c for c in changes if c["lead_id"] == lead_id and c["to"] == "opted_out"]


def admin_stage(local: Local, lead_id: str) -> str:
    status, lead = local.call("GET", f"/v1/leads/{lead_id}", headers={"authorization": f"Bearer {local.admin_token}"})
    assert status == 200, lead
    return str(lead["stage"])


def test_one_click_unsubscribe_stops_every_email_but_not_sales(local: Local) -> None:
    # Given a lead who gets her first nurture email
    now = local.drain()
    identify = {"userId": USER, "messageId": "cy-1", "timestamp": now, "traits": {"email": EMAIL, "seniority": "vp"}}
    assert local.send("identify", identify)[0] == 200
    local.advance(1)
    lead_id = str(local.lead(EMAIL)["lead_id"])
    [(index, first)] = outbox_of(local)

    # Then SES received it with both RFC 8058 headers, pointing at this stack's unsubscribe route
    headers = first["headers"]
    assert isinstance(headers, dict)
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = re.fullmatch(r"<(.+)>", headers["List-Unsubscribe"])
    assert link is not None, headers["List-Unsubscribe"]
    url = link.group(1)
    assert url.startswith(f"{local.url}/v1/unsubscribe?token=")
    [token] = parse_qs(urlsplit(url).query)["token"]
    assert first["subject"]
    assert isinstance(first["variant"], int)  # the A/B subject variant, from the send record
    assert first["variant"] >= 0
    # And its HTML can be opened from the outbox
    status, content_type, page = fetch("GET", f"{local.url}/_local/outbox/{index}.html")
    assert (status, content_type.split(";")[0]) == (200, "text/html")
    assert page.strip()
    assert fetch("GET", f"{local.url}/_local/outbox/9999.html")[0] == 404

    # When someone posts a tampered copy of the token: 400, and she is still in nurture and still gets email
    payload, signature = token.split(".")
    tampered = f"{payload}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"  # a bit every decoder reads
    status, _, body = fetch("POST", f"{local.url}/v1/unsubscribe?token={tampered}", ONE_CLICK, FORM)
    assert status == 400
    assert "not valid" in body
    local.advance(15)
    assert len(outbox_of(local)) == 2
    assert admin_stage(local, lead_id) == "awareness"

    # When a link scanner fetches the real link: a page with a button, and nothing changes
    status, content_type, page = fetch("GET", url)
    assert (status, content_type.split(";")[0]) == (200, "text/html")
    assert '<form method="post"' in page
    local.drain()
    assert admin_stage(local, lead_id) == "awareness"
    assert stage_changes_to_opted_out(local, lead_id) == []

    # When her mail client posts the one-click unsubscribe (RFC 8058)
    status, content_type, page = fetch("POST", url, ONE_CLICK, FORM)
    # Then she is told, opted out at once, and that stage change is published once, even if she clicks again
    assert (status, content_type.split(";")[0]) == (200, "text/html")
    assert "You're unsubscribed" in page
    assert fetch("POST", url, ONE_CLICK, FORM)[0] == 200
    local.drain()
    assert admin_stage(local, lead_id) == "opted_out"
    assert len(stage_changes_to_opted_out(local, lead_id)) == 1

    # When she keeps reading pricing pages and a month passes: nothing more is sent
    sent = len(outbox_of(local))
    for n in range(3):
        page_view = {"userId": USER, "messageId": f"cy-p{n}", "timestamp": local.drain(), "path": "/pricing"}
        assert local.send("page", {**page_view, "properties": {"path": "/pricing"}})[0] == 200
    local.advance(31)
    assert len(outbox_of(local)) == sent
    assert admin_stage(local, lead_id) == "opted_out"

    # When she requests a demo: sales still hears of it, and she still gets no email
    demo = {"userId": USER, "messageId": "cy-demo", "timestamp": local.drain(), "event": "Demo Requested"}
    assert local.send("track", demo)[0] == 200
    local.advance(3)
    alerts = [a for a in local.call("GET", "/_local/alerts")[1] if a["lead_id"] == lead_id]
    assert [a["reason"] for a in alerts] == ["Demo request (lead has opted out of email)"]
    assert len(outbox_of(local)) == sent
    assert len(stage_changes_to_opted_out(local, lead_id)) == 1
