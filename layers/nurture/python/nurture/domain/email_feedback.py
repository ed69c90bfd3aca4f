"""What SES reports about a nurture email, as the lead's track messages, and the rule telling a scanner from a person.

SES event publishing sends one record per delivery, open, click, bounce, complaint or reject (the same JSON
through SNS, as an SNS notification's `Message`, or through EventBridge, as an event's `detail`). Each record
becomes one track message with a messageId derived from the record alone, so a duplicate record is the same
message and changes nothing. Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from ipaddress import ip_address
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nurture.domain.journey import BOUNCED, COMPLAINED
from nurture.domain.messages import TrackMessage, as_utc, normalise_path
from nurture.domain.programme import Scanner
from nurture.domain.rendering import CLICK_TOKEN_PARAMETER
from nurture.domain.scoring import AUTOMATED, AUTOMATED_BECAUSE, EMAIL_LINK_CLICKED

DELIVERED = "Email Delivered"
OPENED = "Email Opened"
CLICKED = EMAIL_LINK_CLICKED
EventType = Literal["Delivery", "Open", "Click", "Bounce", "Complaint", "Reject"]
EVENT_TYPES: tuple[EventType, ...] = ("Delivery", "Open", "Click", "Bounce", "Complaint", "Reject")
# The `detail-type` SES gives each record on EventBridge (the default bus), by the record's eventType.
DETAIL_TYPES: dict[EventType, str] = {
    "Delivery": "Email Delivered",
    "Open": "Email Opened",
    "Click": "Email Clicked",
    "Bounce": "Email Bounced",
    "Complaint": "Email Complaint Received",
    "Reject": "Email Rejected",
}
RECORD_SOURCE = "aws.ses"
CONFIGURATION_SET_TAG = "ses:configuration-set"  # a tag SES adds to every email sent through a configuration set
_TOKEN_PARAMETERS = frozenset({CLICK_TOKEN_PARAMETER, "token"})
# A reject (SES found a virus and sent nothing) is recorded as a bounce of this type: it says nothing about the
# address, so it never suppresses the lead.
REJECTED = "rejected"
# The tags the sender puts on every email (`pipeline/send.py`): SES returns them with each record.
TAG_LEAD = "lead_id"
TAG_SEQUENCE = "sequence"
TAG_CONTENT = "content_id"
TAG_VARIANT = "variant"


def record_pattern(configuration_set: str) -> dict[str, Any]:
    """The EventBridge pattern of the records the email-events Lambda gets: this configuration set's, of the kinds
    above (the CDK app's rule, and `nurture local`'s)."""
    return {
        "source": [RECORD_SOURCE],
        "detail-type": list(DETAIL_TYPES.values()),
        "detail": {"mail": {"tags": {CONFIGURATION_SET_TAG: [configuration_set]}}},
    }


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class SesMail(_Record):
    timestamp: datetime = Field(description="When SES accepted the email for sending")
    message_id: str = Field(alias="messageId", min_length=1, max_length=200)
    destination: list[str] = Field(default_factory=list)
    tags: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return as_utc(value)

    def tag(self, name: str) -> str | None:
        values = self.tags.get(name) or []
        return values[0] if values else None


class _Timed(_Record):
    timestamp: datetime

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return as_utc(value)


class SesDelivery(_Timed):
    processing_time_millis: int | None = Field(default=None, alias="processingTimeMillis")


class SesOpen(_Timed):
    ip_address: str | None = Field(default=None, alias="ipAddress")
    user_agent: str | None = Field(default=None, alias="userAgent")


class SesClick(SesOpen):
    link: str = Field(min_length=1, max_length=2000)
    link_tags: dict[str, list[str]] = Field(default_factory=dict, alias="linkTags")


class SesBounce(_Timed):
    bounce_type: str = Field(alias="bounceType", min_length=1)
    bounce_subtype: str = Field(default="", alias="bounceSubType")
    feedback_id: str = Field(default="", alias="feedbackId")


class SesComplaint(_Timed):
    feedback_id: str = Field(default="", alias="feedbackId")
    complaint_feedback_type: str | None = Field(default=None, alias="complaintFeedbackType")


class SesReject(_Record):
    reason: str = ""


class SesEvent(_Record):
    """One SES event-publishing record (the JSON SES publishes for a configuration set's event destination)."""

    event_type: EventType = Field(alias="eventType")
    mail: SesMail
    delivery: SesDelivery | None = None
    open: SesOpen | None = None
    click: SesClick | None = None
    bounce: SesBounce | None = None
    complaint: SesComplaint | None = None
    reject: SesReject | None = None

    @model_validator(mode="after")
    def _carries_its_details(self) -> SesEvent:
        if getattr(self, self.event_type.lower()) is None:
            raise ValueError(f"a {self.event_type} record needs its `{self.event_type.lower()}` object")
        return self

    @property
    def mail_id(self) -> str:
        return self.mail.message_id

    @property
    def at(self) -> datetime:
        """When it happened, by SES (a reject has no time of its own: the send's)."""
        details = getattr(self, self.event_type.lower())
        return details.timestamp if isinstance(details, _Timed) else self.mail.timestamp

    @property
    def times(self) -> list[tuple[str, datetime]]:
        """Every time the record states, by its field: the send's (`mail.timestamp`) and the event's own."""
        kind = self.event_type.lower()
        details = getattr(self, kind)
        stated = [("mail.timestamp", self.mail.timestamp)]
        if isinstance(details, _Timed):
            stated.append((f"{kind}.timestamp", details.timestamp))
        return stated

    @property
    def interaction(self) -> SesOpen | None:
        """The open or click a person (or a scanner) made; None for what SES or the mailbox reported."""
        return self.click if self.click is not None else self.open

    @property
    def key(self) -> str:
        """This record's identity: the same for a duplicate of it, different for another open, click or bounce."""
        parts: list[Any] = [self.event_type, self.mail_id, self.at.isoformat()]
        if self.interaction is not None:
            parts += [getattr(self.interaction, "link", ""), self.interaction.ip_address, self.interaction.user_agent]
        if self.bounce is not None:
            parts += [self.bounce.feedback_id, self.bounce.bounce_type]
        if self.complaint is not None:
            parts.append(self.complaint.feedback_id)
        return hashlib.blake2b(json.dumps(parts).encode(), digest_size=12).hexdigest()

    @property
    def message_id(self) -> str:
        return f"ses-{self.event_type.lower()}-{self.key}"


class NotAnSesEvent(ValueError):
    """The body is not an SES event record, bare or wrapped by SNS or EventBridge: says what is wrong."""


def unwrap_notification(body: Any) -> dict[str, Any]:
    """The SES record in `body`: an SNS notification (its `Message`), an EventBridge event (its `detail`), or the
    bare record, as a JSON object not yet checked. Raises NotAnSesEvent."""
    record = body
    if isinstance(body, dict) and body.get("Type") == "Notification" and "Message" in body:
        try:
            record = json.loads(body["Message"]) if isinstance(body["Message"], str) else body["Message"]
        except ValueError as error:
            raise NotAnSesEvent("the SNS notification's Message is not JSON") from error
        except RecursionError as error:  # hundreds of levels deep: no SES record is
            raise NotAnSesEvent("the SNS notification's Message is nested too deeply to be an SES record") from error
    elif isinstance(body, dict) and body.get("source") == RECORD_SOURCE and "detail" in body:
        record = body["detail"]
    if not isinstance(record, dict):
        raise NotAnSesEvent("expected an SES event record (a JSON object with eventType and mail)")
    return record


def parse_notification(body: Any) -> SesEvent:
    """The SES record in `body` (bare, or wrapped by SNS or EventBridge), checked. Raises NotAnSesEvent naming the
    problem."""
    record = unwrap_notification(body)
    if "eventType" not in record:
        raise NotAnSesEvent(f"eventType is missing: send one of {', '.join(EVENT_TYPES)}")
    try:
        return SesEvent.model_validate(record)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(record)"
        # pydantic's words for an object of the wrong type name this module's class: say what to send instead.
        problem = "must be a JSON object" if first["type"] in ("model_type", "dict_type") else first["msg"]
        raise NotAnSesEvent(f"{where}: {problem}") from error


# --- The scanner rule ------------------------------------------------------------------------------
class SeenClick(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str
    link: str
    at: datetime


class MailSoFar(BaseModel):
    """What is known of one email when an open or click arrives: when it was sent and delivered, and its clicks."""

    model_config = ConfigDict(frozen=True)

    sent_at: datetime
    delivered_at: datetime | None = None
    clicks: tuple[SeenClick, ...] = ()


def automated_because(event: SesEvent, so_far: MailSoFar, rule: Scanner) -> str | None:
    """Why this open or click looks automated (a scanner's), or None when it may be a person's.

    "Soon after delivery" counts from the delivery when SES has reported it, else from the send (never later than
    the delivery, so an email without a delivery record is flagged less, never more). "Every link at once": another
    link of the same email clicked within `all_links_within_seconds` of this one, before or after it, so the first
    click of a burst is flagged too once the others are known (they usually arrive in the same batch)."""
    action = event.interaction
    if action is None:
        return None
    agent = (action.user_agent or "").lower()
    matched = next((pattern for pattern in rule.user_agents if pattern in agent), None)
    if matched is not None:
        return f"scanner user agent ({matched})"
    network = _network_of(action.ip_address, rule)
    if network is not None:
        return f"scanner network ({network})"
    start = so_far.delivered_at or so_far.sent_at
    if rule.seconds_after_delivery and action.timestamp - start <= timedelta(seconds=rule.seconds_after_delivery):
        return f"within {rule.seconds_after_delivery} seconds of delivery"
    if event.click is not None and rule.all_links_within_seconds:
        window = timedelta(seconds=rule.all_links_within_seconds)
        others = {
            click.link
            for click in so_far.clicks
            if click.key != event.key and click.link != event.click.link and abs(click.at - action.timestamp) <= window
        }
        if others:
            return f"{len(others) + 1} links of the email clicked within {rule.all_links_within_seconds} seconds"
    return None


def _network_of(address: str | None, rule: Scanner) -> str | None:
    if not address or not rule.networks:
        return None
    try:
        ip = ip_address(address)
    except ValueError:
        return None
    return next((str(network) for network in rule.networks if ip in network), None)


# --- Records -> messages ----------------------------------------------------------------------------
def link_without_token(link: str) -> str:
    """The link as the website knows it: without the lead's signed tokens (the click token, the unsubscribe link's),
    which are credentials, not pages."""
    parts = urlsplit(link)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in _TOKEN_PARAMETERS]
    return urlunsplit(parts._replace(query=urlencode(query)))


def to_message(event: SesEvent, profile_id: str, because: str | None = None) -> TrackMessage:
    """The lead's track message for this record, on the lead's profile (`u#…` or `a#…`); `because`: why the open
    or click is flagged as automated (it is stored, and scores nothing)."""
    mail = event.mail
    properties: dict[str, Any] = {"ses_message_id": mail.message_id}
    for tag in (TAG_SEQUENCE, TAG_CONTENT, TAG_VARIANT):
        if (value := mail.tag(tag)) is not None:
            properties[tag] = value
    name = DELIVERED
    if event.open is not None or event.click is not None:
        action = event.interaction
        assert action is not None
        name = OPENED
        if event.click is not None:
            name = CLICKED
            url = link_without_token(event.click.link)
            properties |= {"url": url, "path": normalise_path(urlsplit(url).path)}
            if event.click.link_tags:
                properties["link_tags"] = event.click.link_tags
        if action.user_agent:
            properties["user_agent"] = action.user_agent[:300]
        if because is not None:
            properties |= {AUTOMATED: True, AUTOMATED_BECAUSE: because}
    elif event.bounce is not None:
        name = BOUNCED
        properties |= {
            "bounce_type": event.bounce.bounce_type.lower(),
            "bounce_subtype": event.bounce.bounce_subtype,
        }
    elif event.complaint is not None:
        name = COMPLAINED
        if event.complaint.complaint_feedback_type:
            properties["complaint_feedback_type"] = event.complaint.complaint_feedback_type
    elif event.reject is not None:
        name = BOUNCED
        properties |= {"bounce_type": REJECTED, "bounce_subtype": event.reject.reason}
    who = "userId" if profile_id.startswith("u#") else "anonymousId"
    return TrackMessage.model_validate(
        {
            "type": "track",
            "event": name,
            "messageId": event.message_id,
            who: profile_id[2:],
            "timestamp": event.at,
            "properties": properties,
        }
    )
