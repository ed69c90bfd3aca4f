"""SES feedback: each real-shaped SES record (events/ses/) as the lead's message, what it does to the lead, and the
scanner rule that keeps link scanners' opens and clicks from scoring."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from nurture.domain.email_feedback import (
    MailSoFar,
    NotAnSesEvent,
    SeenClick,
    SesEvent,
    automated_because,
    parse_notification,
    to_message,
)
from nurture.domain.programme import ProgrammeError, Scanner, Stage, load_programme
from nurture.pipeline.email_feedback import EmailFeedback, MailEntry
from nurture.pipeline.leads import LeadService
from tests.fakes import FakeEvents, fake_ports
from tests.support import ROOT, T0, days, known_lead, page, starter, starter_yaml

SAMPLES = ROOT / "events" / "ses"
HUMAN = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari"
DETAILS = {"Delivery": "delivery", "Open": "open", "Click": "click", "Bounce": "bounce", "Complaint": "complaint"}


def sample(name: str) -> Any:
    return json.loads((SAMPLES / f"{name}.json").read_text())


def ses(
    name: str,
    *,
    sent: datetime = T0,
    after: timedelta = timedelta(hours=1),
    link: str | None = None,
    agent: str | None = None,
    ip: str | None = None,
    mail_id: str | None = None,
    lead_id: str | None = None,
) -> dict[str, Any]:
    """The sample record `name`, its email sent at `sent` and the event `after` it."""
    record = copy.deepcopy(sample(name))
    record["mail"]["timestamp"] = sent.isoformat()
    if mail_id is not None:
        record["mail"]["messageId"] = mail_id
    if lead_id is not None:
        record["mail"]["tags"]["lead_id"] = [lead_id]
    details = record.get(DETAILS.get(record["eventType"], ""))
    if details is not None:
        details["timestamp"] = (sent + after).isoformat()
        if link is not None:
            details["link"] = link
        if agent is not None:
            details["userAgent"] = agent
        if ip is not None:
            details["ipAddress"] = ip
    return record


def event(name: str, **changes: Any) -> SesEvent:
    return parse_notification(ses(name, **changes))


def message(name: str, because: str | None = None, **changes: Any):
    return to_message(event(name, **changes), "u#u-1", because)


# --- records -> messages ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "name_of_event", "properties"),
    [
        ("delivery", "Email Delivered", {}),
        ("open", "Email Opened", {}),
        ("click", "Email Link Clicked", {"url": "https://example.com/pricing?utm_source=nurture", "path": "/pricing"}),
        ("bounce-permanent", "Email Bounced", {"bounce_type": "permanent", "bounce_subtype": "General"}),
        ("bounce-transient", "Email Bounced", {"bounce_type": "transient", "bounce_subtype": "MailboxFull"}),
        ("complaint", "Email Complained", {"complaint_feedback_type": "abuse"}),
        ("reject", "Email Bounced", {"bounce_type": "rejected", "bounce_subtype": "Bad content"}),
    ],
)
def test_each_ses_record_becomes_the_lead_s_message_with_what_it_says(name, name_of_event, properties) -> None:
    made = to_message(parse_notification(sample(name)), "u#u-1")
    assert made.event == name_of_event
    assert made.user_id == "u-1"
    assert made.properties.items() >= properties.items()
    # Which email it was about, from the tags the sender puts on every email
    assert made.properties["content_id"] == "awareness-01-why-drips-stall"
    assert made.properties["sequence"] == "awareness"
    assert made.properties["variant"] == "0"


def test_a_clicked_link_is_stored_without_the_lead_s_signed_tokens() -> None:
    click = message("click", link="https://example.com/pricing?plan=team&nt=SECRET")
    unsubscribe = message("click", link="https://api.example.com/v1/unsubscribe?token=SECRET")
    assert click.properties["url"] == "https://example.com/pricing?plan=team"
    assert "SECRET" not in json.dumps(unsubscribe.properties)


def test_a_duplicate_record_is_the_same_message_and_another_open_is_another() -> None:
    first = message("open", after=timedelta(hours=1))
    again = message("open", after=timedelta(hours=1))
    later = message("open", after=timedelta(hours=2))
    assert first.message_id == again.message_id
    assert later.message_id != first.message_id


def test_sns_and_eventbridge_deliveries_of_a_record_are_the_bare_record() -> None:
    bare = parse_notification(sample("click"))
    via_sns = parse_notification(sample("click-sns"))
    via_eventbridge = parse_notification(json.loads(sample("sqs-eventbridge-click")["Records"][0]["body"]))
    assert via_sns == bare
    assert via_eventbridge == bare


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"mail": {}}, "eventType is missing"),
        ({"eventType": "Click", "mail": sample("click")["mail"]}, "needs its `click` object"),
        ({"eventType": "Send", "mail": sample("click")["mail"], "send": {}}, "eventType"),
        ({"eventType": "Open", "open": {"timestamp": "2026-11-23T10:00:00Z"}}, "mail"),
        ({"Type": "Notification", "Message": "not json"}, "not JSON"),
        ({"Type": "Notification", "Message": "[" * 5000 + "]" * 5000}, "nested too deeply"),
        (
            {"eventType": "Open", "mail": "m", "open": {"timestamp": "2026-11-23T10:00:00Z"}},
            "mail: must be a JSON object",
        ),
        ([1, 2], "a JSON object"),
    ],
)
def test_what_is_not_an_ses_record_is_refused_saying_why(body, words: str) -> None:
    with pytest.raises(NotAnSesEvent, match=words):
        parse_notification(body)


# --- what each record does to the lead -----------------------------------------------------------
def test_a_permanent_bounce_suppresses_the_lead_with_the_bounce_type_in_the_reason() -> None:
    journey = known_lead()
    journey.apply(message("bounce-permanent"))
    assert journey.lead.stage is Stage.SUPPRESSED
    assert journey.transitions[-1].reason == "email address bounced permanently (General)"


def test_a_transient_bounce_is_recorded_but_neither_suppresses_nor_counts_as_engagement() -> None:
    journey = known_lead()
    journey.apply(message("bounce-transient"))
    assert journey.lead.stage is Stage.AWARENESS
    assert journey.lead.last_engagement_at is None
    assert journey.lead.has_applied(message("bounce-transient").message_id)


def test_a_reject_does_not_suppress_the_lead() -> None:
    journey = known_lead()
    journey.apply(message("reject"))
    assert journey.lead.stage is Stage.AWARENESS


def test_a_complaint_opts_the_lead_out_at_once() -> None:
    journey = known_lead()
    journey.apply(message("complaint"))
    assert journey.lead.stage is Stage.OPTED_OUT
    assert journey.transitions[-1].reason == "marked an email as spam"


def test_an_open_scores_one_point_and_is_not_engagement() -> None:
    journey = known_lead()
    journey.apply(message("open"))
    assert journey.lead.intent(journey.programme, T0 + days(0.1)) == 1
    assert journey.lead.last_engagement_at is None


def test_a_click_on_the_pricing_link_scores_like_a_pricing_page_visit() -> None:
    clicked, visited = known_lead(), known_lead()
    clicked.apply(message("click", link="https://example.com/pricing/team?nt=t"))
    visited.apply(page("/pricing/team", T0 + timedelta(hours=1)))
    now = T0 + timedelta(hours=2)
    assert clicked.lead.intent(clicked.programme, now) == visited.lead.intent(visited.programme, now) == 30
    assert clicked.lead.last_engagement_at == T0 + timedelta(hours=1)


def test_a_click_on_a_topic_s_link_raises_the_lead_s_interest_in_it() -> None:
    journey = known_lead()
    journey.apply(message("click", link="https://example.com/blog/seo/keywords?nt=t"))
    assert journey.lead.interests == {"seo": 1}


def test_a_click_flagged_as_a_scanner_s_scores_nothing_and_is_not_engagement() -> None:
    journey = known_lead()
    journey.apply(message("click", because="within 60 seconds of delivery", link="https://example.com/blog/seo/a"))
    journey.apply(message("open", because="within 60 seconds of delivery"))
    assert journey.lead.intent(journey.programme, T0 + days(0.1)) == 0
    assert journey.lead.last_engagement_at is None
    assert journey.lead.interests == {}


def test_a_scanner_s_click_does_not_keep_a_decision_lead_from_timing_out() -> None:
    journey = known_lead()
    journey.feed([page("/pricing", T0), page("/pricing/a", T0), page("/pricing/b", T0)])
    assert journey.lead.stage is Stage.DECISION
    journey.apply(message("click", because="scanner user agent (proofpoint)", sent=T0 + days(10)))
    journey.run_until(T0 + days(15))
    assert journey.lead.stage is Stage.CONSIDERATION


# --- the scanner rule -------------------------------------------------------------------------------
RULE = Scanner(seconds_after_delivery=60, all_links_within_seconds=10, networks=["40.94.0.0/16"])


def _so_far(delivered_after: timedelta | None = timedelta(seconds=2), clicks: tuple[SeenClick, ...] = ()) -> MailSoFar:
    delivered = T0 + delivered_after if delivered_after is not None else None
    return MailSoFar(sent_at=T0, delivered_at=delivered, clicks=clicks)


def test_a_click_seconds_after_delivery_is_a_scanner_s_and_one_later_is_a_person_s() -> None:
    scanner = event("click", after=timedelta(seconds=5), agent=HUMAN)
    person = event("click", after=timedelta(minutes=20), agent=HUMAN)
    assert automated_because(scanner, _so_far(), RULE) == "within 60 seconds of delivery"
    assert automated_because(person, _so_far(), RULE) is None


def test_seconds_after_delivery_count_from_the_delivery_when_ses_reported_it() -> None:
    # Delivered 10 minutes after the send (the receiving server deferred it); clicked 20 seconds after that
    click = event("click", after=timedelta(minutes=10, seconds=20), agent=HUMAN)
    assert automated_because(click, _so_far(delivered_after=timedelta(minutes=10)), RULE) is not None
    assert automated_because(click, _so_far(delivered_after=None), RULE) is None


def test_an_open_seconds_after_delivery_is_flagged_too() -> None:
    assert automated_because(event("open", after=timedelta(seconds=3), agent=HUMAN), _so_far(), RULE) is not None


def test_every_link_clicked_at_once_is_a_scanner_even_long_after_delivery() -> None:
    at = timedelta(hours=3)
    first = event("click", after=at, agent=HUMAN, link="https://example.com/pricing")
    second = event("click", after=at + timedelta(seconds=2), agent=HUMAN, link="https://example.com/blog/a")
    clicks = tuple(SeenClick(key=e.key, link=e.click.link, at=e.at) for e in (first, second) if e.click)
    assert automated_because(first, _so_far(clicks=clicks), RULE) == "2 links of the email clicked within 10 seconds"
    assert automated_because(second, _so_far(clicks=clicks), RULE) is not None


def test_the_same_link_clicked_twice_or_two_links_minutes_apart_is_a_person() -> None:
    at = timedelta(hours=3)
    first = event("click", after=at, agent=HUMAN, link="https://example.com/pricing")
    again = event("click", after=at + timedelta(seconds=1), agent=HUMAN, link="https://example.com/pricing")
    later = event("click", after=at + timedelta(minutes=4), agent=HUMAN, link="https://example.com/blog/a")
    clicks = tuple(SeenClick(key=e.key, link=e.click.link, at=e.at) for e in (first, again, later) if e.click)
    for click in (first, again, later):
        assert automated_because(click, _so_far(clicks=clicks), RULE) is None


def test_a_known_scanner_user_agent_or_network_is_flagged_whenever_it_clicks() -> None:
    late = timedelta(days=2)
    by_agent = event("click", after=late, agent="Mozilla/5.0 (compatible; Proofpoint URL Defense)")
    by_network = event("click", after=late, agent=HUMAN, ip="40.94.12.7")
    assert automated_because(by_agent, _so_far(), RULE) == "scanner user agent (proofpoint)"
    assert automated_because(by_network, _so_far(), RULE) == "scanner network (40.94.0.0/16)"


def test_a_rule_set_to_zero_flags_nothing() -> None:
    off = Scanner(seconds_after_delivery=0, all_links_within_seconds=0, user_agents=[])
    click = event("click", after=timedelta(seconds=1), agent="python-requests/2.32")
    assert automated_because(click, _so_far(), off) is None


def test_the_scanner_rule_is_read_from_the_programme() -> None:
    programme = starter()
    text = starter_yaml().replace("seconds_after_delivery: 60", "seconds_after_delivery: 120")
    assert programme.email_feedback.scanner.seconds_after_delivery == 60
    assert load_programme(text).email_feedback.scanner.seconds_after_delivery == 120


def test_a_network_that_is_not_a_cidr_block_is_reported_with_its_path() -> None:
    text = starter_yaml().replace("networks: []", "networks: [40.94.0.1/16]")
    with pytest.raises(ProgrammeError, match=r"email_feedback\.scanner\.networks\.0"):
        load_programme(text)


# --- the service: records to stored events -----------------------------------------------------------
class FakeMailLog:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str, str], MailEntry] = {}

    def entries(self, lead_id: str, mail_id: str) -> list[MailEntry]:
        return [entry for (lead, mail, _), entry in self.items.items() if (lead, mail) == (lead_id, mail_id)]

    def note(self, lead_id: str, mail_id: str, entry: MailEntry, expires_at: datetime) -> None:
        assert expires_at > entry.at
        self.items[(lead_id, mail_id, entry.key)] = entry


@pytest.fixture
def feedback():
    ports = fake_ports()
    service = LeadService(ports, starter(), new_id=lambda: "lead-ada")
    lead_id = service.receive([page("/blog/a", T0, user="u-ada"), _identify()], T0)
    assert lead_id == "lead-ada"
    return EmailFeedback(ports, FakeMailLog(), starter())


def _identify():
    from tests.support import identify

    return identify(T0, user="u-ada", email="ada@northwind.example")


def _stored(feedback: EmailFeedback) -> dict[str, Any]:
    events: FakeEvents = feedback.ports.events  # type: ignore[assignment]
    return {e.message_id: e.message for e in events.items.values() if e.message_id.startswith("ses-")}


def test_a_record_is_stored_once_on_the_lead_s_profile_however_often_it_arrives(feedback) -> None:
    record = event("click", lead_id="lead-ada")
    first = feedback.record(record, T0 + days(1))
    again = feedback.record(event("click", lead_id="lead-ada"), T0 + days(1))
    assert (first.outcome, again.outcome) == ("stored", "duplicate")
    [stored] = _stored(feedback).values()
    assert stored.user_id == "u-ada"
    assert stored.event == "Email Link Clicked"


def test_an_email_without_the_lead_tag_finds_its_lead_by_recipient(feedback) -> None:
    record = ses("open")
    del record["mail"]["tags"]["lead_id"]
    record["mail"]["destination"] = ["Ada@Northwind.example"]
    assert feedback.record(parse_notification(record), T0 + days(1)).lead_id == "lead-ada"


def test_a_record_for_an_erased_lead_stores_nothing(feedback) -> None:
    outcome = feedback.record(event("bounce-permanent", lead_id="lead-gone"), T0 + days(1))
    assert outcome.outcome == "unknown_lead"
    assert _stored(feedback) == {}


def test_the_first_click_of_a_scanner_s_burst_is_flagged_when_the_burst_arrives_together(feedback) -> None:
    # Given a scanner that clicks every link of an email three hours after delivery, its records in one batch
    late = timedelta(hours=3)
    burst = [
        event("click", lead_id="lead-ada", after=late + timedelta(seconds=i), agent=HUMAN, link=link)
        for i, link in enumerate(["https://example.com/pricing", "https://example.com/blog/a", "https://x.example/"])
    ]
    # When the first is recorded (the others not yet)
    first = feedback.record(burst[0], T0 + days(1), peers=burst)
    # Then it is flagged by the burst it belongs to, and stored flagged
    assert first.automated_because == "3 links of the email clicked within 10 seconds"
    [stored] = _stored(feedback).values()
    assert stored.properties["automated"] is True


def test_a_click_after_the_delivery_was_noted_is_judged_from_the_delivery(feedback) -> None:
    # Delivered ten minutes after the send; a click 30 seconds after the delivery is a scanner's
    feedback.record(event("delivery", lead_id="lead-ada", after=timedelta(minutes=10)), T0 + days(1))
    click = event("click", lead_id="lead-ada", after=timedelta(minutes=10, seconds=30), agent=HUMAN)
    assert feedback.record(click, T0 + days(1)).automated_because == "within 60 seconds of delivery"


# --- records dated out of bounds -----------------------------------------------------------------------
END_OF_TIME = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
RECEIVED = T0 + days(1)


@pytest.mark.parametrize(
    ("name", "changes", "problem"),
    [
        pytest.param(
            "click",
            {"sent": END_OF_TIME, "after": timedelta(0)},
            "mail.timestamp: must not be more than a day after the record was received",
            id="click-at-the-end-of-time",
        ),
        pytest.param(
            "click",
            {"after": days(90)},
            "click.timestamp: must not be more than a day after the record was received",
            id="click-months-ahead",
        ),
        pytest.param(
            "delivery",
            {"sent": datetime(1999, 12, 31, tzinfo=UTC)},
            "mail.timestamp: must not be before 2000-01-01",
            id="sent-before-2000",
        ),
    ],
)
def test_a_record_dated_out_of_bounds_is_refused_naming_the_field_and_stores_nothing(
    feedback, name: str, changes: dict[str, Any], problem: str
) -> None:
    # Given a record about the lead's email with a time the ingest API would refuse in a message
    record = event(name, lead_id="lead-ada", **changes)
    # When the email-events function records it
    outcome = feedback.record(record, RECEIVED)
    # Then it is refused, saying why, without failing (no retry can mend it), and nothing is kept of it
    assert (outcome.outcome, outcome.problem) == ("refused", problem)
    assert _stored(feedback) == {}
    assert feedback.mail_log.items == {}


def test_a_click_a_day_ahead_is_still_stored_and_a_later_good_record_of_the_lead_too(feedback) -> None:
    refused = feedback.record(event("click", lead_id="lead-ada", sent=END_OF_TIME, after=timedelta(0)), RECEIVED)
    just_ahead = feedback.record(event("click", lead_id="lead-ada", sent=RECEIVED, after=days(1)), RECEIVED)
    later = feedback.record(event("open", lead_id="lead-ada", after=timedelta(hours=5), agent=HUMAN), RECEIVED)
    assert [refused.outcome, just_ahead.outcome, later.outcome] == ["refused", "stored", "stored"]


def test_a_refused_record_in_the_batch_does_not_flag_a_person_s_click(feedback) -> None:
    # Given a person's click just inside the bounds, and in its batch another link's click dated just past them
    edge = RECEIVED + days(1) - T0
    person = event("click", lead_id="lead-ada", after=edge - timedelta(seconds=2), agent=HUMAN)
    ahead = event(
        "click", lead_id="lead-ada", after=edge + timedelta(seconds=2), agent=HUMAN, link="https://example.com/blog/a"
    )
    # When the person's click is recorded with its batch in view
    outcome = feedback.record(person, RECEIVED, peers=[person, ahead])
    # Then the refused record does not make it look like every link clicked at once
    assert (outcome.outcome, outcome.automated_because) == ("stored", None)
