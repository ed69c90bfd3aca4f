"""SES feedback over real HTTP against `nurture local --clock manual`: real-shaped SES records (events/ses/) about the
emails SES actually received (`GET /_local/outbox`), fed at `POST /_local/ses-events` through the deployed path
(default bus, rule, queue, email-events function, stream, scorer). What counts is what a user sees: the admin lead
view, and what SES receives afterwards."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.e2e.conftest import START, Local
from tests.support import ROOT

pytestmark = pytest.mark.e2e
SAMPLES = ROOT / "events" / "ses"
DETAILS = {"Delivery": "delivery", "Open": "open", "Click": "click", "Bounce": "bounce", "Complaint": "complaint"}
PERSON = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari"


def _sample(name: str) -> Any:
    return json.loads((SAMPLES / f"{name}.json").read_text())


def _dated_sample(name: str, at: str = START) -> Any:
    """The sample record `name`, sent and reported at `at` (the samples' own date is ahead of the stack's clock)."""
    record = _sample(name)
    record["mail"]["timestamp"] = record[DETAILS[record["eventType"]]]["timestamp"] = at
    return record


class Mailbox:
    """One lead that got its first nurture email, and SES's records about that email."""

    def __init__(self, local: Local, user: str) -> None:
        self.local = local
        self.email = f"{user}@northwind.example"
        now = local.drain()
        identify = {"userId": user, "messageId": f"{user}-1", "timestamp": now, "traits": {"email": self.email}}
        assert local.send("identify", identify)[0] == 200
        local.advance(1)
        [self.mail] = local.outbox(self.email)
        self.lead_id = str(self.mail["lead_id"])
        self.sent_at = datetime.fromisoformat(str(self.mail["sent_at"]))

    def record(self, name: str | dict[str, Any], after: timedelta, **details: Any) -> dict[str, Any]:
        """The sample record `name` (or this record) about this lead's email, `after` it was sent."""
        record = copy.deepcopy(_sample(name)) if isinstance(name, str) else copy.deepcopy(name)
        mail = record["mail"]
        mail |= {
            "messageId": self.mail["message_id"],
            "timestamp": self.sent_at.isoformat(),
            "destination": [self.email],
        }
        mail["tags"]["lead_id"] = [self.lead_id]
        mail["tags"]["content_id"] = [self.mail["content_id"]]
        if (block := record.get(DETAILS.get(record["eventType"], ""))) is not None:
            block |= {"timestamp": (self.sent_at + after).isoformat(), **details}
        return record

    def feed(self, body: Any) -> list[dict[str, Any]]:
        status, answer = self.local.call("POST", "/_local/ses-events", body)
        assert status == 200, answer
        return list(answer["records"])

    def view(self) -> dict[str, Any]:
        status, lead = self.local.call(
            "GET", f"/v1/leads/{self.lead_id}", headers={"authorization": f"Bearer {self.local.admin_token}"}
        )
        assert status == 200, lead
        return dict(lead)

    def emails(self) -> int:
        return len(self.local.outbox(self.email))


def test_a_permanent_bounce_suppresses_the_lead_and_ses_gets_no_more_email_for_it(local: Local) -> None:
    # Given a lead whose first email SES sent
    ada = Mailbox(local, "bounce-ada")
    assert ada.view()["stage"] == "awareness"
    # When SES reports that the address bounced permanently
    [record] = ada.feed(ada.record("bounce-permanent", timedelta(seconds=3)))
    # Then the lead view shows it suppressed, and why
    assert record["stored"] is True
    view = ada.view()
    assert view["stage"] == "suppressed"
    assert view["transitions"][-1]["reason"] == "email address bounced permanently (General)"
    # And a month later SES has received no other email for her
    local.advance(30)
    assert ada.emails() == 1


def test_a_complaint_opts_the_lead_out_at_once(local: Local) -> None:
    bo = Mailbox(local, "complaint-bo")
    bo.feed(bo.record("complaint", timedelta(hours=2)))
    view = bo.view()
    assert view["stage"] == "opted_out"
    assert view["transitions"][-1]["reason"] == "marked an email as spam"
    local.advance(30)
    assert bo.emails() == 1


def test_a_transient_bounce_is_recorded_but_the_lead_stays_in_nurture(local: Local) -> None:
    cy = Mailbox(local, "transient-cy")
    [record] = cy.feed(cy.record("bounce-transient", timedelta(minutes=5)))
    assert record["stored"] is True  # kept as the lead's event: counted (TransientBounces), reported monthly
    assert cy.view()["stage"] == "awareness"
    # The next awareness email still goes out (cadence: 14 days)
    local.advance(15)
    assert cy.emails() == 2


def test_a_scanner_burst_scores_nothing_while_a_person_s_pricing_click_counts_once(local: Local) -> None:
    # Given a lead whose email was delivered
    di = Mailbox(local, "scanner-di")
    di.feed(di.record("delivery", timedelta(seconds=1, milliseconds=500)))
    # When a corporate scanner opens it and clicks every link two seconds after delivery (one batch)
    burst = [di.record(record, timedelta(seconds=3 + i * 0.25)) for i, record in enumerate(_sample("scanner-burst"))]
    answers = di.feed(burst)
    # Then every record is stored, and none scores or moves the lead
    assert [a["stored"] for a in answers] == [True] * len(burst)
    view = di.view()
    assert view["intent"] == 0
    assert view["intent_explained"] == []
    assert view["stage"] == "awareness"
    # When the person clicks the pricing link forty minutes later
    click = di.record("click", timedelta(minutes=40), userAgent=PERSON)
    [first] = di.feed(click)
    assert (first["stored"], first["duplicate"]) == (True, False)
    # Then it scores like a pricing page visit
    view = di.view()
    assert view["intent"] == 30
    assert [e["rule"] for e in view["intent_explained"]] == ["pricing_page_visit"]
    # And the same record delivered again, as SNS would wrap it, changes nothing
    wrapped = _sample("click-sns") | {"Message": json.dumps(click)}
    [again] = di.feed(wrapped)
    assert (again["stored"], again["duplicate"]) == (False, True)
    assert di.view()["intent"] == 30
    assert di.view()["intent_explained"] == view["intent_explained"]
    # And so does the same record twice in one list: the first is stored, the second is its duplicate
    twice = di.record("click", timedelta(minutes=50), userAgent=PERSON)
    answers = di.feed([twice, twice])
    assert [(a["stored"], a["duplicate"]) for a in answers] == [(True, False), (False, True)]


def test_a_record_dated_past_the_calendar_or_months_ahead_is_refused_and_the_lead_keeps_scoring(local: Local) -> None:
    # Given a lead whose first email SES sent
    ed = Mailbox(local, "dated-ed")
    dead_letters = len(local.call("GET", "/_local/dead-letters")[1])
    # When a pricing click dated 9999-12-31, then one dated three months ahead, is posted
    end_of_time = ed.record("click", timedelta(0), userAgent=PERSON)
    end_of_time["mail"]["timestamp"] = end_of_time["click"]["timestamp"] = "9999-12-31T23:59:59Z"
    months_ahead = ed.record("click", timedelta(days=90), userAgent=PERSON)
    answers = [local.call("POST", "/_local/ses-events", body) for body in (end_of_time, months_ahead)]
    # Then each is a 400 naming the field, and the lead view shows no points from either
    assert [status for status, _ in answers] == [400, 400]
    assert "mail.timestamp: must not be more than a day after" in answers[0][1]["message"]
    assert "click.timestamp: must not be more than a day after" in answers[1][1]["message"]
    assert ed.view()["intent"] == 0
    # And the lead's real click, forty minutes after the send, scores as usual, with nothing dead-lettered
    ed.feed(ed.record("click", timedelta(minutes=40), userAgent=PERSON))
    local.advance(1)
    assert ed.view()["intent"] > 0
    assert len(local.call("GET", "/_local/dead-letters")[1]) == dead_letters


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"{not json", "not JSON"),
        (b'{"mail": {}}', "eventType is missing"),
        (b'{"eventType": "Click", "mail": {"timestamp": "2026-01-05T09:00:00Z", "messageId": "m"}}', "click"),
        (b"[]", "1 to 100"),
        (b'{"Type": "Notification", "Message": "nope"}', "not JSON"),
    ],
)
def test_a_body_that_is_not_an_ses_record_gets_a_400_saying_why(local: Local, body: bytes, words: str) -> None:
    status, answer = local.call("POST", "/_local/ses-events", raw=body)
    assert status == 400
    assert words in answer["message"]


def test_a_record_of_another_configuration_set_is_refused(local: Local) -> None:
    record = _dated_sample("open")
    record["mail"]["tags"]["ses:configuration-set"] = ["someone-else"]
    status, answer = local.call("POST", "/_local/ses-events", record)
    assert status == 400
    assert "ses:configuration-set" in answer["message"]


def test_a_record_about_an_email_to_no_known_lead_stores_nothing(local: Local) -> None:
    record = _dated_sample("open")
    record["mail"]["tags"]["lead_id"] = ["no-such-lead"]
    status, answer = local.call("POST", "/_local/ses-events", record)
    assert status == 200
    assert answer["records"][0]["stored"] is False
