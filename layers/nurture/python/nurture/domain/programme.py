"""The programme: what marketing and sales own, loaded from `programme.yaml` and checked before anything runs.

Every mistake is reported with its YAML path (and line), what is wrong and how to fix it, all at once.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import time
from enum import StrEnum
from typing import Annotated, Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, IPvAnyNetwork, ValidationError, field_validator, model_validator
from wcmatch import glob

from nurture.domain.messages import Seniority


class Stage(StrEnum):
    """Where a lead is. The first four are nurture sequences; the rest stop nurture email."""

    AWARENESS = "awareness"
    CONSIDERATION = "consideration"
    DECISION = "decision"
    RE_ENGAGEMENT = "re_engagement"
    SALES_ENGAGED = "sales_engaged"
    OPTED_OUT = "opted_out"
    SUPPRESSED = "suppressed"
    EXCLUDED = "excluded"

    @property
    def is_sequence(self) -> bool:
        return self in SEQUENCES


SEQUENCES = (Stage.AWARENESS, Stage.CONSIDERATION, Stage.DECISION, Stage.RE_ENGAGEMENT)
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[str, ...] = get_args(Weekday)
PATH_GLOB_FLAGS = glob.GLOBSTAR | glob.IGNORECASE


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- Intent -----------------------------------------------------------------------------------
class Match(_Strict):
    """Which messages a rule scores: `page` by URL path glob, or `track` by event name."""

    type: Literal["page", "track"]
    path: list[str] = Field(default_factory=list, description="URL path globs; `**` spans folders")
    event: str | None = None
    properties: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Every listed property must equal this value"
    )

    @field_validator("path", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class Cap(_Strict):
    """At most `points` from one rule in any `per_days` days in a row (whole days, UTC, today included)."""

    points: int = Field(gt=0)
    per_days: int = Field(gt=0, le=365)


class IntentRule(_Strict):
    id: str = Field(pattern=r"^[a-z0-9_]+$")
    label: str
    when: Match
    points: int = Field(ge=-1000, le=1000)
    nth: int | None = Field(default=None, ge=2, description="Only the nth matching message scores")
    cap: Cap | None = None
    route_to_sales: bool = False

    def day_limit(self, intent: Intent) -> int:
        """How many of this rule's messages on one day can change the score: beyond it, more change nothing."""
        return self.nth if self.nth is not None else intent.max_per_day

    @property
    def max_total(self) -> float:
        """The most this rule can ever add (infinite when it repeats without a cap)."""
        if self.points <= 0:
            return 0
        # A cap limits a window, not a lifetime, so only `nth` bounds a rule.
        return self.points if self.nth is not None else math.inf


class Intent(_Strict):
    half_life_days: float = Field(gt=0, description="An event this old weighs half as much")
    max_score: int | None = Field(default=None, gt=0)
    max_per_day: int = Field(
        default=20,
        ge=1,
        le=1000,
        description="A rule counts at most this many times a day (UTC) for one lead: a person reads a few pages, "
        "a bot thousands",
    )
    forget_after_days: int = Field(
        default=365,
        ge=30,
        le=400,
        description="Events older than this many days no longer add points (they still count for `nth`)",
    )
    automation_events_per_day: int = Field(
        default=500,
        ge=50,
        description="A lead sending more events than this in one day (UTC) is flagged as probable automation",
    )
    rules: list[IntentRule] = Field(min_length=1)
    not_engagement: list[str] = Field(
        default_factory=lambda: ["Email Opened", "Email Delivered"],
        description="Track events that do not count as engagement (opens are proxied by privacy tools)",
    )


class Thresholds(_Strict):
    consideration: int = Field(gt=0)
    decision: int = Field(gt=0)
    grace_days: int = Field(
        default=14,
        gt=0,
        le=365,
        description="Days in a row a Consideration lead may read below the consideration threshold before it "
        "returns to Awareness",
    )


# --- Fit --------------------------------------------------------------------------------------
class SizeBand(_Strict):
    min: int = Field(ge=0)
    max: int | None = Field(default=None, ge=0)
    points: int

    def contains(self, employees: int) -> bool:
        return employees >= self.min and (self.max is None or employees <= self.max)


class Exclusions(_Strict):
    competitor_domains: list[str] = Field(default_factory=list)
    countries: list[str] = Field(default_factory=list)

    @field_validator("competitor_domains")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [domain.strip().lower() for domain in value]


class Grades(_Strict):
    """The least fit score of each grade; a lead below C's is graded D."""

    A: int = 60
    B: int = 40
    C: int = 20

    @model_validator(mode="after")
    def _descending(self) -> Grades:
        if not self.A >= self.B >= self.C:
            raise ValueError("grades must not increase from A to C")
        return self


class Fit(_Strict):
    company_size: list[SizeBand] = Field(default_factory=list)
    seniority: dict[Seniority, int] = Field(default_factory=dict)
    industry: dict[str, int] = Field(default_factory=dict)
    budget_authority: int = 0
    country: dict[str, int] = Field(default_factory=dict)
    personal_email: int = Field(default=0, le=0, description="Points for a free/personal email domain")
    exclude: Exclusions = Field(default_factory=Exclusions)
    grades: Grades = Field(default_factory=lambda: Grades(), description="Fit grades, as sales sees them in alerts")

    def grade(self, score: int) -> str:
        """The fit grade of a fit score: the best grade whose least score it reaches, else D."""
        grades = self.grades
        return next((g for g, least in (("A", grades.A), ("B", grades.B), ("C", grades.C)) if score >= least), "D")


# --- Sequences --------------------------------------------------------------------------------
class Timeout(_Strict):
    after_days: int = Field(gt=0)
    to: str
    measured_from: Literal["entry", "last_engagement"] = "entry"


class Sequence(_Strict):
    cadence_days: float = Field(gt=0)
    emails: list[str] = Field(min_length=1)
    timeout: Timeout | None = None
    alert_sales_on_entry: bool = False
    suppress_after_emails: int | None = Field(default=None, gt=0)


class Sequences(_Strict):
    awareness: Sequence
    consideration: Sequence
    decision: Sequence
    re_engagement: Sequence


class SendWindow(_Strict):
    days: list[Weekday] = Field(min_length=1)
    start: time
    end: time


class FrequencyCap(_Strict):
    max_emails: int = Field(gt=0)
    per_days: int = Field(gt=0)
    min_hours_apart: float = Field(
        default=20, ge=0, description="No two nurture emails closer than this, even across sequences"
    )


class Schedule(_Strict):
    send_window: SendWindow
    default_timezone: str
    frequency_cap: FrequencyCap = FrequencyCap(max_emails=3, per_days=7)


class Owner(_Strict):
    """A sales rep who can own leads."""

    name: str = Field(min_length=1, max_length=100)
    email: str | None = Field(default=None, max_length=254)
    slack: str | None = Field(
        default=None, pattern=r"^[UW][A-Z0-9]{2,20}$", description="Slack member id, so the alert mentions them"
    )


class RoutingRule(_Strict):
    """Leads matching every listed condition go to `owner` (rules are tried in order; the first match wins)."""

    owner: str
    countries: list[str] = Field(default_factory=list, description="ISO 3166 alpha-2 codes")
    min_company_size: int | None = Field(default=None, ge=0)
    max_company_size: int | None = Field(default=None, ge=0)


class SalesHandoff(_Strict):
    events: list[str] = Field(default_factory=lambda: ["Demo Booked"])
    owners: list[Owner] = Field(
        default_factory=list, description="Sales reps: a lead no rule matches goes to the next one in turn"
    )
    rules: list[RoutingRule] = Field(default_factory=list, description="Routing by country and company size")
    lead_link: str | None = Field(
        default=None,
        pattern=r"^https://[^\s]*\{lead_id\}[^\s]*$",
        max_length=500,
        description="Where the alert's link points, with `{lead_id}` (your CRM); default: the API's lead view",
    )

    @model_validator(mode="after")
    def _rules_name_owners(self) -> SalesHandoff:
        names = [owner.name for owner in self.owners]
        if len(set(names)) != len(names):
            raise ValueError("owners: each owner's name must be different")
        unknown = sorted({rule.owner for rule in self.rules} - set(names))
        if unknown:
            raise ValueError(f"rules: {', '.join(unknown)} is not one of the owners ({', '.join(names) or 'none'})")
        return self


# --- Email feedback: what SES reports about an email ---------------------------------------------
# Starting points, matched case-insensitively inside the User-Agent: tools and scanners that fetch links for a
# mailbox, not people. Tune them (and `networks`) with the flagged events your own mail produces.
SCANNER_USER_AGENTS = (
    "barracuda",
    "mimecast",
    "proofpoint",
    "symantec",
    "trendmicro",
    "forcepoint",
    "sophos",
    "headlesschrome",
    "python-requests",
    "go-http-client",
    "curl/",
    "wget/",
)


class Scanner(_Strict):
    """When an email open or click looks like a corporate link scanner's (Safe Links, Proofpoint, Mimecast), not a
    person's: it is stored and flagged `automated`, scores nothing and is not engagement."""

    seconds_after_delivery: int = Field(
        default=60, ge=0, le=3600, description="An open or click this soon after the email was delivered"
    )
    all_links_within_seconds: int = Field(
        default=10, ge=0, le=600, description="A click with another link of the same email clicked this close to it"
    )
    user_agents: list[str] = Field(
        default_factory=lambda: list(SCANNER_USER_AGENTS),
        description="Case-insensitive parts of a User-Agent that only scanners send",
    )
    networks: list[IPvAnyNetwork] = Field(
        default_factory=list, description="CIDR blocks scanners click from, e.g. 40.94.0.0/16"
    )

    @field_validator("user_agents")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [agent.strip().lower() for agent in value if agent.strip()]


class EmailFeedback(_Strict):
    scanner: Scanner = Field(default_factory=Scanner)


# --- Content: who sends, what to ask, topics and personas ----------------------------------------
HttpsUrl = Annotated[str, Field(pattern=r"^https://[^\s/$.?#][^\s]*$", max_length=500)]


class SenderDetails(_Strict):
    """Who the emails come from, as the footer of every email shows it."""

    name: str = Field(default="The Northstar team", min_length=1, max_length=100)
    company: str = Field(default="Northstar", min_length=1, max_length=100)
    postal_address: str = Field(
        default="", max_length=300, description="Printed in every footer: the law (CAN-SPAM) asks for it"
    )


class Profiling(_Strict):
    """Progressive profiling: where a lead tells us what sales needs that we do not know yet."""

    form_url: HttpsUrl | None = Field(
        default=None, description="Gated-content form (company size, role, timeline): Awareness and Consideration"
    )
    budget_question_url: HttpsUrl | None = Field(default=None, description="The budget question: Decision")


class Topic(_Strict):
    """An interest, from what a lead reads and does."""

    label: str = Field(min_length=1, max_length=60)
    paths: list[str] = Field(default_factory=list, description="Page path globs, as in intent rules")
    events: list[str] = Field(default_factory=list, description="Track event names")

    @field_validator("paths", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class Persona(_Strict):
    """Who a lead is, from its traits. A lead matches a persona when every listed trait matches."""

    label: str = Field(min_length=1, max_length=60)
    seniority: list[Seniority] = Field(default_factory=list)
    industry: list[str] = Field(default_factory=list)
    min_company_size: int | None = Field(default=None, ge=0)
    max_company_size: int | None = Field(default=None, ge=0)


class EmailTags(_Strict):
    """What an email's front matter says it is for: filled in by the content loader, not written in the programme."""

    topics: tuple[str, ...] = ()
    personas: tuple[str, ...] = ()


class Programme(_Strict):
    name: str
    intent: Intent
    thresholds: Thresholds
    fit: Fit = Field(default_factory=Fit)
    sequences: Sequences
    schedule: Schedule
    sales_handoff: SalesHandoff = Field(default_factory=SalesHandoff)
    sender: SenderDetails = Field(default_factory=SenderDetails)
    profiling: Profiling = Field(default_factory=Profiling)
    topics: dict[Annotated[str, Field(pattern=r"^[a-z0-9_]+$")], Topic] = Field(default_factory=dict)
    personas: dict[Annotated[str, Field(pattern=r"^[a-z0-9_]+$")], Persona] = Field(default_factory=dict)
    email_feedback: EmailFeedback = Field(default_factory=EmailFeedback)
    email_tags: dict[str, EmailTags] = Field(
        default_factory=dict,
        exclude=True,
        description="Each email's topics and personas, from its front matter (set by the content loader)",
    )
    revision: str = Field(default="", description="Set by the loader: a hash of the file")

    def sequence(self, stage: Stage) -> Sequence:
        sequence: Sequence = getattr(self.sequences, stage.value)
        return sequence

    def stage_for_intent(self, intent: float) -> Stage:
        if intent >= self.thresholds.decision:
            return Stage.DECISION
        if intent >= self.thresholds.consideration:
            return Stage.CONSIDERATION
        return Stage.AWARENESS

    def decay_days(self, intent: float) -> int:
        """Days after its last message until a lead whose intent read `intent` then reads below the
        consideration threshold: floor(half_life * log2((intent + 1/2) / (threshold - 1/2))) + 1, or 0 if it
        already does (every weight steps down at midnight UTC; the score is rounded to whole points)."""
        threshold = self.thresholds.consideration
        if intent < threshold:
            return 0
        return math.floor(self.intent.half_life_days * math.log2((intent + 0.5) / (threshold - 0.5))) + 1

    @property
    def episode_days(self) -> float:
        """The longest a Re-engagement episode lasts: each of its emails one cadence after the last, each
        perhaps held back by the frequency cap (`per_days`) and a closed send window (at most 7 days), and
        one more cadence to answer the last."""
        sequence = self.sequences.re_engagement
        limit = sequence.suppress_after_emails or len(sequence.emails)
        slack = self.schedule.frequency_cap.per_days + 7
        return limit * (sequence.cadence_days + slack) + sequence.cadence_days

    def quiet_exits(self, stage: Stage, intent: float) -> list[tuple[Stage, float]]:
        """How a lead in `stage` that hears nothing more leaves it, and the most days each way can take."""
        sequence = self.sequence(stage)
        exits: list[tuple[Stage, float]] = []
        if sequence.timeout is not None and sequence.timeout.to in {s.value for s in SEQUENCES}:
            exits.append((Stage(sequence.timeout.to), sequence.timeout.after_days))
        if stage is Stage.CONSIDERATION:
            exits.append((Stage.AWARENESS, self.decay_days(intent) + self.thresholds.grace_days))
        if stage is Stage.RE_ENGAGEMENT:
            exits.append((Stage.SUPPRESSED, self.episode_days))
        return exits

    def quiet_days(self, intent: float) -> float:
        """Nothing waits forever: the most days a lead stays in nurture after its last message, when its
        intent read `intent` then. It sums the longest way out through timeouts, Consideration's return to
        Awareness and Re-engagement's suppression; infinite only for a programme `check_programme` rejects."""

        def longest(stage: Stage, seen: frozenset[Stage]) -> float:
            if not stage.is_sequence:
                return 0
            exits = self.quiet_exits(stage, intent)
            if stage in seen or not exits:
                return math.inf
            return max(days + longest(to, seen | {stage}) for to, days in exits)

        return max(longest(stage, frozenset()) for stage in SEQUENCES)

    def with_emails(self, describe: Callable[[str], EmailTags | None]) -> Programme:
        """This programme knowing its emails' topics and personas (`email_tags`), for choosing a lead's next email.
        `describe` gives an email's tags from its front matter, or None when it cannot be read."""
        tags = {}
        for content_id in sorted({e for stage in SEQUENCES for e in self.sequence(stage).emails}):
            found = describe(content_id)
            if found is not None and (found.topics or found.personas):
                tags[content_id] = found
        return self if tags == self.email_tags else self.model_copy(update={"email_tags": tags})

    @property
    def rules_by_id(self) -> dict[str, IntentRule]:
        return {rule.id: rule for rule in self.intent.rules}

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.schedule.default_timezone)


# --- Loading and checking ---------------------------------------------------------------------
@dataclass(frozen=True)
class ProgrammeIssue:
    path: tuple[str | int, ...]
    problem: str
    fix: str

    @property
    def dotted(self) -> str:
        return ".".join(str(part) for part in self.path) or "(top level)"


class ProgrammeError(ValueError):
    """The programme cannot run. `issues` lists every problem; `str()` is ready to print."""

    def __init__(self, issues: list[ProgrammeIssue], source: str = "programme.yaml", text: str = "") -> None:
        self.issues = issues
        self.source = source
        lines = _line_finder(text)
        rendered = [f"{source}: {len(issues)} problem{'s' if len(issues) != 1 else ''}"]
        for issue in issues:
            line = lines(issue.path)
            where = f"line {line}, " if line else ""
            rendered.append(f"  {where}{issue.dotted}: {issue.problem}\n    Fix: {issue.fix}")
        super().__init__("\n".join(rendered))


def load_programme(text: str, source: str = "programme.yaml") -> Programme:
    """Parse and check a programme. Raises ProgrammeError naming every problem."""
    import yaml  # here: the handlers that never read a programme do not import PyYAML

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ProgrammeError(
            [
                ProgrammeIssue(
                    (),
                    f"is not valid YAML{where}: {getattr(error, 'problem', error)}",
                    "check the indentation and quoting around that line",
                )
            ],
            source,
        ) from error
    if not isinstance(data, dict):
        raise ProgrammeError(
            [ProgrammeIssue((), "is not a YAML mapping", "start from content/programme.yaml")], source, text
        )
    try:
        programme = Programme.model_validate(data)
    except ValidationError as error:
        raise ProgrammeError([_from_pydantic(e) for e in error.errors()], source, text) from error
    issues = list(check_programme(programme))
    if issues:
        raise ProgrammeError(issues, source, text)
    revision = hashlib.sha256(text.encode()).hexdigest()[:12]
    return programme.model_copy(update={"revision": revision})


def check_programme(p: Programme) -> Iterator[ProgrammeIssue]:
    """The rules pydantic's types cannot express: references, reachability, duplicates."""
    yield from _check_rules(p)
    yield from _check_thresholds(p)
    yield from _check_sequences(p)
    yield from _check_quiet_leads(p)
    yield from _check_fit(p)
    yield from _check_schedule(p)


def _check_rules(p: Programme) -> Iterator[ProgrammeIssue]:
    seen: set[str] = set()
    for i, rule in enumerate(p.intent.rules):
        at = ("intent", "rules", i)
        if rule.id in seen:
            yield ProgrammeIssue((*at, "id"), f"'{rule.id}' is used by another rule", "give each rule its own id")
        seen.add(rule.id)
        when = rule.when
        if when.type == "page":
            if when.event is not None:
                yield ProgrammeIssue(
                    (*at, "when", "event"),
                    "page messages have no event name, so this rule matches nothing",
                    "use `type: track` to score a tracked event, or remove `event` and match on `path`",
                )
            if not when.path and not when.properties:
                yield ProgrammeIssue(
                    (*at, "when", "path"),
                    "a page rule needs a path to match",
                    'add `path: "/pricing"` (or a glob such as "/blog/**"); "/**" scores every page',
                )
            for j, pattern in enumerate(when.path):
                if not pattern.startswith("/"):
                    yield ProgrammeIssue(
                        (*at, "when", "path", j),
                        f"'{pattern}' never matches: page paths start with '/'",
                        f"write it as '/{pattern.lstrip('/')}'",
                    )
        if when.type == "track":
            if not when.event:
                yield ProgrammeIssue(
                    (*at, "when", "event"),
                    "a track rule needs the event name it scores",
                    'add `event: "Demo Requested"` (the exact name the snippet sends)',
                )
            if when.path:
                yield ProgrammeIssue(
                    (*at, "when", "path"),
                    "track events have no page path, so this rule matches nothing",
                    "use `type: page` to score page visits, or remove `path`",
                )
        if rule.cap is not None and rule.cap.points < rule.points:
            yield ProgrammeIssue(
                (*at, "cap", "points"),
                f"a cap of {rule.cap.points} is below the rule's own {rule.points} points, so it never scores fully",
                f"raise the cap to at least {rule.points} or lower the points",
            )
        if rule.nth is not None and rule.cap is not None:
            yield ProgrammeIssue(
                (*at, "cap"),
                "`nth` already scores once, so a cap has nothing to limit",
                "remove `cap` or `nth`",
            )
        if rule.cap is not None and rule.cap.per_days > p.intent.forget_after_days:
            yield ProgrammeIssue(
                (*at, "cap", "per_days"),
                f"a {rule.cap.per_days}-day cap window is longer than events are remembered "
                f"({p.intent.forget_after_days} days)",
                "shorten the cap window or raise `intent.forget_after_days`",
            )


def _check_thresholds(p: Programme) -> Iterator[ProgrammeIssue]:
    t = p.thresholds
    if t.decision <= t.consideration:
        yield ProgrammeIssue(
            ("thresholds", "decision"),
            f"decision ({t.decision}) must be above consideration ({t.consideration})",
            "raise `decision` (the seeds use 40 and 80)",
        )
    reachable = sum(rule.max_total for rule in p.intent.rules)
    ceiling = min(reachable, p.intent.max_score or math.inf)
    for name in ("consideration", "decision"):
        value = getattr(t, name)
        if value > ceiling:
            why = (
                f"`intent.max_score` is {p.intent.max_score}"
                if p.intent.max_score and value > p.intent.max_score
                else f"the rules can add at most {ceiling:g} points"
            )
            yield ProgrammeIssue(
                ("thresholds", name),
                f"{value} can never be reached: {why}",
                f"lower the {name} threshold to at most {ceiling:g} or raise the cap",
            )


def _check_sequences(p: Programme) -> Iterator[ProgrammeIssue]:
    owner: dict[str, str] = {}
    names = [stage.value for stage in SEQUENCES]
    for stage in SEQUENCES:
        sequence = p.sequence(stage)
        at = ("sequences", stage.value)
        for i, email in enumerate(sequence.emails):
            if email in owner:
                yield ProgrammeIssue(
                    (*at, "emails", i),
                    f"email '{email}' is already listed in {owner[email]}",
                    "give each email its own id: a lead never gets the same email twice, so a repeat is never sent",
                )
            owner.setdefault(email, f"sequences.{stage.value}")
        if sequence.timeout is not None and sequence.timeout.to not in names:
            close = difflib.get_close_matches(sequence.timeout.to, names, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            yield ProgrammeIssue(
                (*at, "timeout", "to"),
                f"'{sequence.timeout.to}' is not a sequence",
                f"{hint}use one of: {', '.join(names)}",
            )
        elif sequence.timeout is not None and sequence.timeout.to == stage.value:
            yield ProgrammeIssue(
                (*at, "timeout", "to"),
                "a timeout must move the lead to another sequence",
                f"pick another sequence than {stage.value}",
            )
    re_engagement = p.sequences.re_engagement
    if re_engagement.suppress_after_emails is None:
        yield ProgrammeIssue(
            ("sequences", "re_engagement", "suppress_after_emails"),
            "is required: re-engagement is the last attempt",
            "set `suppress_after_emails: 3` to suppress leads who do not respond to three emails",
        )
    elif re_engagement.suppress_after_emails > len(re_engagement.emails):
        yield ProgrammeIssue(
            ("sequences", "re_engagement", "emails"),
            f"lists {len(re_engagement.emails)} emails but leads are suppressed after "
            f"{re_engagement.suppress_after_emails}",
            f"add emails to reach {re_engagement.suppress_after_emails}, or lower `suppress_after_emails`",
        )
    for stage in (Stage.AWARENESS, Stage.CONSIDERATION, Stage.DECISION):
        if p.sequence(stage).suppress_after_emails is not None:
            yield ProgrammeIssue(
                ("sequences", stage.value, "suppress_after_emails"),
                "only applies to re_engagement",
                "remove it here; use `timeout` to move leads on",
            )


def _check_quiet_leads(p: Programme) -> Iterator[ProgrammeIssue]:
    """Nothing waits forever: from every sequence, a lead that hears nothing more must reach suppression."""
    stuck = [stage for stage in SEQUENCES if not p.quiet_exits(stage, 0)]
    for stage in stuck:
        yield ProgrammeIssue(
            ("sequences", stage.value, "timeout"),
            "is required: a lead that hears nothing more would wait here forever",
            "add e.g. `timeout: {after_days: 90, to: re_engagement}`",
        )
    if stuck or not math.isinf(p.quiet_days(0)):
        return
    loop = next((found for stage in SEQUENCES if (found := _quiet_loop(p, [stage]))), [Stage.RE_ENGAGEMENT] * 2)
    timed = [a for a, b in itertools.pairwise(loop) if (t := p.sequence(a).timeout) is not None and t.to == b.value]
    culprit = Stage.RE_ENGAGEMENT if Stage.RE_ENGAGEMENT in timed else (timed or loop)[0]
    yield ProgrammeIssue(
        ("sequences", culprit.value, "timeout", "to"),
        f"sends quiet leads round in a circle ({' -> '.join(s.value for s in loop)}), so they never stop",
        "point the timeout towards re_engagement, and give re_engagement no timeout: it ends in suppression",
    )


def _quiet_loop(p: Programme, path: list[Stage]) -> list[Stage] | None:
    """A way round in a circle from the end of `path`, as the list of stages it visits, if there is one."""
    for to, _ in p.quiet_exits(path[-1], 0):
        if to in path:
            return [*path[path.index(to) :], to]
        if to.is_sequence and (loop := _quiet_loop(p, [*path, to])):
            return loop
    return None


def _check_fit(p: Programme) -> Iterator[ProgrammeIssue]:
    bands = sorted(enumerate(p.fit.company_size), key=lambda item: item[1].min)
    for (_, lower), (j, upper) in itertools.pairwise(bands):
        if lower.max is None or upper.min <= lower.max:
            yield ProgrammeIssue(
                ("fit", "company_size", j),
                f"the band starting at {upper.min} overlaps the one starting at {lower.min}",
                "make the bands follow each other, e.g. 1-49, 50-999, 1000 and up",
            )
    for i, band in enumerate(p.fit.company_size):
        if band.max is not None and band.max < band.min:
            yield ProgrammeIssue(("fit", "company_size", i, "max"), "is below `min`", "swap min and max")
    for where, codes in (("exclude", p.fit.exclude.countries), ("country", list(p.fit.country))):
        for code in codes:
            if len(code) != 2 or not code.isalpha() or not code.isupper():
                yield ProgrammeIssue(
                    ("fit", where, code) if where == "country" else ("fit", "exclude", "countries"),
                    f"'{code}' is not an ISO 3166 alpha-2 country code",
                    "use two capital letters, e.g. DE",
                )


def _check_schedule(p: Programme) -> Iterator[ProgrammeIssue]:
    window = p.schedule.send_window
    if window.end <= window.start:
        yield ProgrammeIssue(
            ("schedule", "send_window", "end"),
            f"ends at {window.end} before it starts at {window.start}",
            "set `end` later than `start`, e.g. 09:00 to 17:00",
        )
    try:
        ZoneInfo(p.schedule.default_timezone)
    except (ZoneInfoNotFoundError, ValueError):
        yield ProgrammeIssue(
            ("schedule", "default_timezone"),
            f"'{p.schedule.default_timezone}' is not a time zone",
            "use an IANA name such as Europe/London or America/New_York",
        )
    cap = p.schedule.frequency_cap
    fastest = min(p.sequence(stage).cadence_days for stage in SEQUENCES)
    if cap.min_hours_apart > fastest * 24:
        yield ProgrammeIssue(
            ("schedule", "frequency_cap", "min_hours_apart"),
            f"{cap.min_hours_apart:g} hours is longer than the fastest cadence (every {fastest:g} days)",
            f"use at most {fastest * 24:g} hours",
        )
    if cap.max_emails < math.ceil(cap.per_days / fastest):
        yield ProgrammeIssue(
            ("schedule", "frequency_cap", "max_emails"),
            f"{cap.max_emails} emails per {cap.per_days} days is slower than the fastest cadence "
            f"(every {fastest:g} days)",
            f"allow at least {math.ceil(cap.per_days / fastest)} emails per {cap.per_days} days",
        )


_FIXES = {
    "extra_forbidden": "remove it, or check its spelling",
    "missing": "add it (content/programme.yaml shows every field)",
    "greater_than": "use a positive number",
    "greater_than_equal": "use a larger number",
    "less_than_equal": "use a smaller number",
    "int_parsing": "use a whole number",
    "float_parsing": "use a number",
    "literal_error": "use one of the listed values",
    "time_parsing": "write the time as HH:MM, e.g. 09:00",
    "too_short": "add at least one entry",
    "string_pattern_mismatch": "use lower-case letters, digits and underscores",
}
_KNOWN_FIELDS: dict[str, list[str]] = {}


def _from_pydantic(error: Any) -> ProgrammeIssue:
    path = tuple(error["loc"])
    kind = error["type"]
    fix = _FIXES.get(kind, "see content/programme.yaml for an example")
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(str(path[-1]), _field_names(), n=1)
        if close:
            fix = f"did you mean `{close[0]}`? Otherwise remove it"
        return ProgrammeIssue(path, "is not a programme setting", fix)
    problem = error["msg"][0].lower() + error["msg"][1:]
    if "input" in error and kind not in ("missing",) and not isinstance(error["input"], dict | list):
        problem += f" (got {error['input']!r})"
    return ProgrammeIssue(path, problem, fix)


def _field_names() -> list[str]:
    if not _KNOWN_FIELDS:
        for model in _Strict.__subclasses__():
            _KNOWN_FIELDS[model.__name__] = list(model.model_fields)
    return sorted({name for names in _KNOWN_FIELDS.values() for name in names})


def _line_finder(text: str) -> Any:
    """Maps a YAML path to its line number (the nearest existing parent for a missing key)."""
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader) if text else None
    except yaml.YAMLError:
        root = None

    def find(path: tuple[str | int, ...]) -> int | None:
        node = root
        line = node.start_mark.line + 1 if node is not None else None
        for part in path:
            child = None
            if isinstance(node, yaml.MappingNode):
                child = next((v for k, v in node.value if k.value == str(part)), None)
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                child = node.value[part]
            if child is None:
                break
            node, line = child, child.start_mark.line + 1
        return line

    return find


def path_matches(path: str, patterns: list[str]) -> bool:
    return bool(patterns) and _path_matches(path, tuple(patterns))


@functools.lru_cache(maxsize=65536)
def _path_matches(path: str, patterns: tuple[str, ...]) -> bool:
    """Remembered: a site has a few hundred paths and a programme a few dozen patterns, read on every message."""
    return bool(_compiled(patterns).match(path))


@functools.lru_cache(maxsize=1024)
def _compiled(patterns: tuple[str, ...]) -> Any:
    """The patterns compiled once (a programme has a few dozen; compiling on every message was a sixth of the
    engine's time)."""
    return glob.compile(list(patterns), flags=PATH_GLOB_FLAGS)
