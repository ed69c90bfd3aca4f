"""The sales handoff over real HTTP: a demo request reaches sales once, on the sales topic and in Slack (a local
receiver stands in for Slack's incoming webhook), with the values sales needs, an owner and a link."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.e2e.conftest import Local, start_local

ADA: dict[str, Any] = {
    "email": "ada@analytical.example",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "company": "Analytical Engines",
    "company_size": 250,
    "seniority": "vp",
    "country": "GB",
    "problem": "Reps call leads who are not ready",
    "budget_authority": True,
    "timeline": "this quarter",
}
SALES_VALUES = ("name", "company", "company_size", "seniority", "problem", "budget_authority", "timeline")


@dataclass
class SlackStandIn:
    """Slack's incoming webhook, as far as a sender can tell: answers each POST with the next planned status."""

    plan: list[int] = field(default_factory=list)  # statuses to answer first; then 200
    received: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    url: str = ""  # the webhook URL, once serving

    def serve(self) -> ThreadingHTTPServer:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                status = stand_in.plan.pop(0) if stand_in.plan else 200
                stand_in.received.append((status, body))
                answer = b"ok" if status == 200 else b"rate_limited" if status == 429 else b"server_error"
                self.send_response(status)
                if status == 429:
                    self.send_header("retry-after", "0")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}/services/T000/B000/local"
        return server

    @property
    def accepted(self) -> list[dict[str, Any]]:
        return [body for status, body in self.received if status == 200]


@pytest.fixture(scope="module")
def slack() -> Iterator[SlackStandIn]:
    stand_in = SlackStandIn(plan=[429])  # Slack rate-limits the first post: the client waits and posts again
    server = stand_in.serve()
    yield stand_in
    server.shutdown()


@pytest.fixture(scope="module")
def stack(slack: SlackStandIn) -> Iterator[Local]:
    with start_local("--slack-webhook", slack.url) as local:
        yield local


def _alerts(local: Local, lead_id: str) -> list[dict[str, Any]]:
    return [a for a in local.call("GET", "/_local/alerts")[1] if a["lead_id"] == lead_id]


def test_a_demo_request_alerts_sales_once_with_every_value_an_owner_and_a_link(
    stack: Local, slack: SlackStandIn
) -> None:
    now = stack.drain()
    assert stack.send("identify", {"userId": "u-ada", "traits": ADA, "timestamp": now})[0] == 200
    for i in range(3):
        stack.send("page", {"userId": "u-ada", "properties": {"path": "/pricing"}, "messageId": f"p-{i}"})
    stack.send("track", {"userId": "u-ada", "event": "Demo Requested", "messageId": "demo-1"})
    stack.drain()
    lead = stack.lead(ADA["email"])

    [alert] = _alerts(stack, lead["lead_id"])
    assert {name: alert[name] for name in SALES_VALUES} == {
        "name": "Ada Lovelace",
        "company": "Analytical Engines",
        "company_size": "250 employees",
        "seniority": "VP",
        "problem": "Reps call leads who are not ready",
        "budget_authority": "yes",
        "timeline": "this quarter",
    }
    assert alert["fit_grade"] == "A"
    assert alert["owner"] == "Sam Rivera"
    assert alert["link"] == f"{stack.url}/v1/leads/{lead['lead_id']}"
    assert any(signal.startswith("Pricing page visit 3\N{MULTIPLICATION SIGN}") for signal in alert["signals"])
    # Slack: one post taken (after one 429), in Block Kit, with the same values.
    assert [status for status, _ in slack.received] == [429, 200]
    [posted] = slack.accepted
    blocks = json.dumps(posted["blocks"])
    assert posted["blocks"][0]["type"] == "header"
    assert "Ada Lovelace (Analytical Engines)" in blocks
    for value in ("250 employees", "VP", "this quarter", "Reps call leads who are not ready", "Sam Rivera"):
        assert value in blocks
    # CRM connectors: one Lead Qualified on the bus, with the owner.
    qualified = [q for q in stack.call("GET", "/_local/lead-qualified")[1] if q["lead_id"] == lead["lead_id"]]
    assert [(q["owner"], q["fit_grade"]) for q in qualified] == [("Sam Rivera", "A")]
    # The admin API's lead view shows who owns the lead.
    assert stack.lead(ADA["email"])["owner"] == "Sam Rivera"


def test_more_demo_requests_the_same_day_raise_no_second_alert_and_a_later_one_keeps_the_owner(
    stack: Local, slack: SlackStandIn
) -> None:
    lead = stack.lead(ADA["email"])
    posts = len(slack.accepted)
    for i in range(5):
        stack.send("track", {"userId": "u-ada", "event": "Demo Requested", "messageId": f"demo-again-{i}"})
    stack.drain()
    assert len(_alerts(stack, lead["lead_id"])) == 1
    assert len(slack.accepted) == posts

    stack.advance(1)
    stack.send("track", {"userId": "u-ada", "event": "Demo Requested", "messageId": "demo-next-day"})
    stack.drain()
    alerts = _alerts(stack, lead["lead_id"])
    assert [a["owner"] for a in alerts] == ["Sam Rivera", "Sam Rivera"]
    assert len(slack.accepted) == posts + 1


def test_a_lead_no_rule_matches_goes_to_the_next_owner_and_a_rule_routes_by_country() -> None:
    with start_local() as local:  # Slack off: alerts still reach the sales topic
        now = local.drain()
        for user, country in (("u-gb", "GB"), ("u-de", "DE"), ("u-fr", "FR")):
            traits = {"email": f"{user}@example.org", "country": country}
            local.send("identify", {"userId": user, "traits": traits, "timestamp": now})
            local.send("track", {"userId": user, "event": "Demo Requested", "messageId": f"demo-{user}"})
        local.drain()
        owners = {a["email"]: a["owner"] for a in local.call("GET", "/_local/alerts")[1]}
    assert owners == {
        "u-gb@example.org": "Sam Rivera",
        "u-de@example.org": "Jonas Weber",
        "u-fr@example.org": "Priya Shah",
    }


def test_an_alert_slack_never_takes_goes_to_the_alerts_dlq_and_sales_still_hear_once_on_the_topic() -> None:
    down = SlackStandIn(plan=[500] * 100)
    server = down.serve()
    try:
        with start_local("--slack-webhook", down.url) as local:
            now = local.drain()
            local.send("identify", {"userId": "u-bo", "traits": {"email": "bo@example.org"}, "timestamp": now})
            local.send("track", {"userId": "u-bo", "event": "Demo Requested", "messageId": "demo-bo"})
            local.drain()
            alerts = local.call("GET", "/_local/alerts")[1]
            dead = [d for d in local.call("GET", "/_local/dead-letters")[1] if d["queue"] == "nurture-alerts-dlq"]
    finally:
        server.shutdown()
    assert len(alerts) == 1  # the topic delivered once, though the alert was tried five times
    [letter] = dead
    assert letter["request"]["detail"]["lead_id"] == alerts[0]["lead_id"]
    assert "Slack answered 500" in letter["error"]
    assert down.accepted == []
    assert len(down.received) > 5


def test_sales_answers_accepted_then_won_and_the_lead_view_keeps_both_with_the_amount(stack: Local) -> None:
    lead = stack.lead(ADA["email"])
    admin = {"authorization": f"Bearer {stack.admin_token}"}
    path = f"/v1/leads/{lead['lead_id']}/sales-status"

    assert stack.call("POST", path, {"status": "accepted"}, admin)[0] == 200
    status, answer = stack.call("POST", path, {"status": "won", "amount": 24000}, admin)
    assert status == 200, answer
    assert stack.call("POST", path, {"status": "won", "amount": -5}, admin)[0] == 400

    view = stack.lead(ADA["email"])
    assert view["sales_status"] == "won"
    assert [(r["status"], r["amount"]) for r in view["sales_history"]] == [("accepted", None), ("won", 24000)]
    assert view["stage"] == "sales_engaged"  # nurture stopped when sales accepted
