"""Segment-compatible messages (`track`, `page`, `identify`) and the lead traits they carry.

One pydantic model per message shape; the ingest API, `nurture replay` and the scorer all parse with
these, so a message means the same thing everywhere.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationInfo,
    field_validator,
    model_validator,
)

Seniority = Literal["ic", "manager", "director", "vp", "c_level"]

MAX_ID_LENGTH = 200
CLIENT_INPUT = {"client_input": True}
"""Validation context for what a client sends (the ingest API): the strict rules below apply. Without it
(leads and events read back from the tables, replay, tests) the rules are the ones that data was stored
under, so nothing stored before they were tightened becomes unreadable, and its lead stuck."""
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")  # what was stored before CLIENT_INPUT's rules
# C0 and C1 control characters (NUL, tab, newline, DEL...): never part of an id or an event's name.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def from_client(info: ValidationInfo) -> bool:
    return isinstance(info.context, dict) and info.context.get("client_input") is True


def no_control_characters(value: str | None, info: ValidationInfo) -> str | None:
    if value is not None and from_client(info) and _CONTROL.search(value):
        raise ValueError("must not contain control characters (such as NUL, tab or newline)")
    return value


@cache
def iana_time_zones() -> dict[str, str]:
    """The IANA time zone names (from the pinned `tzdata`, whatever the host has), by their lower case.

    `zoneinfo.available_timezones()` also lists the host's own files, such as `localtime`, which
    names no place and differs between machines; `Factory` is IANA's placeholder for "unknown".
    """
    names = resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8").split()
    return {name.lower(): name for name in names if name != "Factory"}


def as_utc(value: datetime) -> datetime:
    """A naive timestamp is taken to be UTC, as Segment does."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class LeadTraits(BaseModel):
    """What a lead has told us about themselves (from `identify`). Unknown traits are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    email: str | None = Field(default=None, description="An address (syntax only; compared in lower case)")
    first_name: str | None = Field(default=None, max_length=200)
    last_name: str | None = Field(default=None, max_length=200)
    company: str | None = Field(default=None, max_length=300)
    company_size: int | None = Field(default=None, ge=0, le=10_000_000, description="Employees")
    title: str | None = Field(default=None, max_length=300)
    seniority: Seniority | None = None
    industry: str | None = Field(default=None, max_length=100)
    country: str | None = Field(default=None, description="ISO 3166 alpha-2")
    timezone: str | None = Field(default=None, description="IANA time zone, e.g. Europe/Berlin")
    problem: str | None = Field(default=None, max_length=2000)
    budget_authority: bool | None = None
    timeline: str | None = Field(default=None, max_length=300)

    @model_validator(mode="before")
    @classmethod
    def _segment_reserved_traits(cls, data: Any) -> Any:
        """Segment's reserved traits as analytics.js and the server libraries spell them: `firstName`, `lastName`,
        `name` (split at its first space when neither part is given), `employees`, and `company` as an object (its
        name, size and industry). The snake_case names win when both are given."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for camel, snake in (("firstName", "first_name"), ("lastName", "last_name"), ("employees", "company_size")):
            if camel in data and data.get(snake) is None:
                data[snake] = data[camel]
        name = data.get("name")
        if isinstance(name, str) and name.strip() and data.get("first_name") is None and data.get("last_name") is None:
            first, _, last = name.strip().partition(" ")
            data["first_name"], data["last_name"] = first, (last.strip() or None)
        if isinstance(data.get("company"), dict):
            company = data["company"]
            data["company"] = company.get("name")
            data.setdefault("company_size", company.get("employee_count"))
            data.setdefault("industry", company.get("industry"))
        return data

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if not from_client(info):
            value = value.strip().lower()
            if len(value) > 254 or not _EMAIL.match(value):
                raise ValueError("must be an email address such as ada@example.com")
            return value
        # Imported here: only addresses from a client (the ingest API) are checked by email-validator (slow to load).
        from email_validator import EmailNotValidError, validate_email

        try:
            # Syntax only (no DNS look-up): one plain address, no display name, quotes or control characters.
            checked = validate_email(value.strip(), check_deliverability=False)
        except EmailNotValidError as error:
            raise ValueError(f"must be an email address such as ada@example.com ({error})") from error
        return checked.normalized.lower()

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        from iso3166 import countries_by_alpha2

        value = value.strip().upper()
        known = value in countries_by_alpha2 if from_client(info) else re.fullmatch(r"[A-Z]{2}", value)
        if not known:
            raise ValueError("must be an ISO 3166-1 alpha-2 country code such as DE or US")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if not from_client(info):
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError) as error:
                raise ValueError("must be an IANA time zone such as Europe/Berlin") from error
            return value
        name = iana_time_zones().get(value.strip().lower())
        if name is None:
            raise ValueError("must be an IANA time zone such as Europe/Berlin")
        return name

    @field_validator("industry")
    @classmethod
    def _industry(cls, value: str | None) -> str | None:
        return value.strip().lower().replace(" ", "_") if value else value

    @property
    def email_domain(self) -> str | None:
        return self.email.rsplit("@", 1)[1] if self.email else None

    def merged(self, newer: LeadTraits) -> LeadTraits:
        """These traits updated by `newer`: a field `newer` does not set keeps its value."""
        return self.model_copy(update=newer.model_dump(exclude_none=True))


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    message_id: str = Field(alias="messageId", min_length=1, max_length=MAX_ID_LENGTH)
    user_id: str | None = Field(default=None, alias="userId", min_length=1, max_length=MAX_ID_LENGTH)
    anonymous_id: str | None = Field(default=None, alias="anonymousId", min_length=1, max_length=MAX_ID_LENGTH)
    timestamp: datetime
    context: dict[str, Any] = Field(default_factory=dict)

    @field_validator("user_id", "anonymous_id", mode="before")
    @classmethod
    def _ids_are_strings(cls, value: Any) -> Any:
        # Segment libraries send numeric user ids as numbers; they are ids, not quantities.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("message_id", "user_id", "anonymous_id")
    @classmethod
    def _printable_ids(cls, value: str | None, info: ValidationInfo) -> str | None:
        return no_control_characters(value, info)

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return as_utc(value)

    @model_validator(mode="after")
    def _someone_sent_it(self) -> _Message:
        if self.user_id is None and self.anonymous_id is None:
            raise ValueError("needs a userId or an anonymousId")
        return self

    @property
    def profile_ids(self) -> tuple[str, ...]:
        """Stable keys of the profiles this message belongs to: `u#<userId>` and/or `a#<anonymousId>`."""
        ids = []
        if self.user_id is not None:
            ids.append(f"u#{self.user_id}")
        if self.anonymous_id is not None:
            ids.append(f"a#{self.anonymous_id}")
        return tuple(ids)


class TrackMessage(_Message):
    type: Literal["track"]
    event: str = Field(min_length=1, max_length=200)
    properties: dict[str, Any] = Field(default_factory=dict)

    @field_validator("event")
    @classmethod
    def _printable_event(cls, value: str, info: ValidationInfo) -> str:
        no_control_characters(value, info)
        return value


class PageMessage(_Message):
    type: Literal["page"]
    name: str | None = Field(default=None, max_length=200)
    properties: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _printable_name(cls, value: str | None, info: ValidationInfo) -> str | None:
        return no_control_characters(value, info)

    @property
    def path(self) -> str:
        """The page's URL path: `properties.path`, else the path of `properties.url` or `context.page`."""
        page = self.context.get("page")
        page_context: dict[str, Any] = page if isinstance(page, dict) else {}
        for source in (self.properties, page_context):
            if isinstance(source.get("path"), str) and source["path"]:
                return normalise_path(source["path"])
        for source in (self.properties, page_context):
            if isinstance(source.get("url"), str) and source["url"]:
                return normalise_path(urlsplit(source["url"]).path)
        return "/"


class IdentifyMessage(_Message):
    type: Literal["identify"]
    traits: LeadTraits = Field(default_factory=LeadTraits)


# Any Segment message: the one definition the ingest API, the ports, the lead service and the engine share.
Message = TrackMessage | PageMessage | IdentifyMessage
SegmentMessage = Annotated[Message, Field(discriminator="type")]
BehaviourMessage = TrackMessage | PageMessage
segment_message: TypeAdapter[Message] = TypeAdapter(SegmentMessage)


def normalise_path(path: str) -> str:
    """`/Pricing/` and `/pricing` are the same page to a marketer."""
    path = "/" + path.strip().lstrip("/")
    if len(path) > 1:
        path = path.rstrip("/")
    return path.lower()
