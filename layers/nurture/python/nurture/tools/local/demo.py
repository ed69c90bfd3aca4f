"""`nurture demo`: three scripted buyers through the local stack, over HTTP, with a manual clock.

One converts, one stalls into re-engagement and suppression, one opts out. The timeline says what
happened to each and why, as the engine reports it (stage changes, emails, sales alerts).
"""

from __future__ import annotations

import base64
import itertools
import json
import urllib.request
from collections.abc import Callable
from datetime import datetime
from typing import Any, TextIO

PEOPLE = {
    "ada@northwind.example": "Ada (VP Marketing, Northwind)",
    "bo@contoso.example": "Bo (analyst, Contoso)",
    "cy@fabrikam.example": "Cy (ops manager, Fabrikam)",
}


class Client:
    def __init__(self, url: str, write_key: str, admin_token: str) -> None:
        self.url = url
        self.basic = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
        self.admin = f"Bearer {admin_token}"
        self.ids = itertools.count(1)

    def call(self, method: str, path: str, body: Any = None, auth: str | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"content-type": "application/json", "authorization": auth or ""}
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)  # noqa: S310
        with urllib.request.urlopen(request, timeout=120) as answer:  # noqa: S310 - the local stack, on loopback
            return json.load(answer)

    def send(self, kind: str, user: str, now: str, **fields: Any) -> None:
        message = {"userId": user, "messageId": f"demo-{next(self.ids)}", "timestamp": now, **fields}
        self.call("POST", f"/v1/{kind}", message, auth=self.basic)

    def advance(self, days: float) -> str:
        now: str = self.call("POST", "/_local/clock", {"advance_days": days})["now"]
        return now


class Narrator:
    """Prints what the engine did since it last looked, per person."""

    def __init__(self, client: Client, out: TextIO) -> None:
        self.client = client
        self.out = out
        self.seen = {"stage": 0, "mail": 0, "alert": 0}
        self.names: dict[str, str] = {}

    def name(self, lead_id: str) -> str:
        if lead_id not in self.names:
            lead = self.client.call("GET", f"/v1/leads/{lead_id}", auth=self.client.admin)
            self.names[lead_id] = PEOPLE.get(lead["email"], lead["email"] or lead_id)
        return self.names[lead_id]

    def report(self) -> None:
        self.client.call("POST", "/_local/drain")
        lines: list[tuple[str, str]] = []
        for change in self._new("stage", "/_local/stage-changes"):
            origin = change["from"] or "new lead"
            lines.append(
                (change["at"], f"{self.name(change['lead_id'])}: {origin} -> {change['to']} ({change['reason']})")
            )
        for mail in self._new("mail", "/_local/outbox"):
            lines.append(
                (mail["sent_at"], f'{self.name(mail["lead_id"])}: email [{mail["sequence"]}] "{mail["subject"]}"')
            )
        for alert in self._new("alert", "/_local/alerts"):
            missing = f"; still unknown: {', '.join(alert['missing'])}" if alert["missing"] else ""
            lines.append(
                (
                    alert["at"],
                    f"{self.name(alert['lead_id'])}: SALES ALERT to {alert['owner']}: {alert['reason']} "
                    f"(intent {alert['intent']:.0f}, fit {alert['fit_grade']}; {'; '.join(alert['signals'][:2])}"
                    f"{missing})",
                )
            )
        for at, line in sorted(lines):
            self.out.write(f"  {datetime.fromisoformat(at):%a %d %b %H:%M}  {line}\n")

    def _new(self, kind: str, path: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.client.call("GET", path)
        fresh = items[self.seen[kind] :]
        self.seen[kind] = len(items)
        return fresh


def play(client: Client, out: TextIO, log: Callable[[str], None]) -> None:
    narrator = Narrator(client, out)
    now = client.call("POST", "/_local/drain")["now"]

    def chapter(title: str) -> None:
        narrator.report()
        out.write(f"\n{title}\n")

    chapter("Week 1: three people sign up for the newsletter")
    client.send(
        "identify",
        "u-ada",
        now,
        traits={
            "email": "ada@northwind.example",
            "first_name": "Ada",
            "company": "Northwind",
            "company_size": 240,
            "seniority": "vp",
            "industry": "software",
            "country": "GB",
        },
    )
    client.send("page", "u-ada", now, properties={"path": "/blog/why-drips-stall"})
    client.send(
        "identify",
        "u-bo",
        now,
        traits={
            "email": "bo@contoso.example",
            "first_name": "Bo",
            "company": "Contoso",
            "company_size": 30,
            "seniority": "ic",
            "country": "US",
            "timezone": "America/New_York",
        },
    )
    client.send(
        "identify",
        "u-cy",
        now,
        traits={
            "email": "cy@fabrikam.example",
            "first_name": "Cy",
            "company": "Fabrikam",
            "seniority": "manager",
            "country": "DE",
            "timezone": "Europe/Berlin",
        },
    )
    now = client.advance(3)
    chapter("Days 3-10: Ada and Cy start evaluating; Bo reads nothing")
    client.send("page", "u-ada", now, properties={"path": "/pricing"})
    client.send("track", "u-ada", now, event="Case Study Downloaded", properties={"title": "Fabrikam"})
    client.send("page", "u-cy", now, properties={"path": "/pricing"})
    client.send("page", "u-cy", now, properties={"path": "/blog/lead-scoring"})
    client.send("page", "u-cy", now, properties={"path": "/blog/sales-handoff"})
    now = client.advance(7)
    chapter("Days 10-20: Ada compares products and asks for a demo; Cy unsubscribes")
    for product in ("scoring", "sequences", "alerts"):
        client.send("page", "u-ada", now, properties={"path": f"/products/{product}"})
    # Only the engine records an unsubscribe (the public API refuses it): the local stack stands in for the link.
    client.call(
        "POST",
        "/_local/system-event",
        {"type": "track", "userId": "u-cy", "messageId": "demo-unsubscribe", "timestamp": now, "event": "Unsubscribed"},
    )
    now = client.advance(2)
    client.send("track", "u-ada", now, event="Demo Requested")
    client.send(
        "identify",
        "u-ada",
        now,
        traits={"problem": "Sales ignores nurtured leads", "budget_authority": True, "timeline": "this quarter"},
    )
    now = client.advance(8)
    chapter("Day 20: Ada books the demo: she is sales' now; sales accepts her, and wins the deal five days later")
    client.send("track", "u-ada", now, event="Demo Booked")
    client.call("POST", "/_local/drain")  # the booking is scored before sales answers
    ada = client.call("GET", "/v1/leads?email=ada@northwind.example", auth=client.admin)["lead_id"]
    client.call("POST", f"/v1/leads/{ada}/sales-status", {"status": "accepted"}, auth=client.admin)
    client.advance(5)
    client.call("POST", f"/v1/leads/{ada}/sales-status", {"status": "won", "amount": 24000}, auth=client.admin)
    chapter("Days 25-145: Bo never engages: awareness, re-engagement, suppression")
    log("moving the clock 120 days (only the ticks at which something is due run)...")
    client.advance(120)
    narrator.report()
    out.write("\nWhere everyone is now\n")
    for email, person in PEOPLE.items():
        lead = client.call("GET", f"/v1/leads?email={email}", auth=client.admin)
        sent = len(lead["sends"])
        out.write(f"  {person}: {lead['stage']}, intent {lead['intent']:.0f}, fit {lead['fit']}, {sent} emails\n")
    _print_review(client, out)


def _print_review(client: Client, out: TextIO) -> None:
    """The monthly review of January, the month the three buyers arrived (what `nurture report --month 2026-01`
    prints against this stack)."""
    from rich.console import Console

    from nurture.tools.cli import read_programme
    from nurture.tools.report.figures import monthly_report
    from nurture.tools.report.terminal import print_report

    months = client.call("GET", "/_local/metrics")["months"]
    out.write("\nThe monthly review (nurture report --month 2026-01)\n")
    print_report(monthly_report(months, "2026-01", programme=read_programme(None)), Console(file=out, width=110))
