"""The journey state machine: (lead, input, programme, now) -> (new lead, effects).

Inputs are Segment messages, clock ticks and sales updates; effects are stage transitions, emails
to send and sales alerts. Pure: no I/O and no clock of its own, so a simulated year runs in
milliseconds and the Lambdas, `nurture replay` and the local stack all share it.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from nurture.domain.frozen import replaced
from nurture.domain.messages import BehaviourMessage, IdentifyMessage, LeadTraits, Message, TrackMessage
from nurture.domain.programme import Programme, Stage, path_matches
from nurture.domain.schedule import next_send_time
from nurture.domain.scoring import (
    Tallies,
    below_since,
    clicked_path,
    day_of,
    fit_score,
    intent_score,
    is_automated,
    matching_rules,
)

UNSUBSCRIBED = "Unsubscribed"
DEMO_BOOKED = "Demo Booked"
COMPLAINED = "Email Complained"
BOUNCED = "Email Bounced"
RECENT_MESSAGES_KEPT = 128
# Ids of messages that changed a lead's tallies are kept this many days after they were applied: a DynamoDB
# stream redelivers a record only within its 24-hour retention, so a duplicate never counts twice.
REMEMBER_DAYS = 2
REMEMBERED_KEPT = 1024
HISTORY_KEPT = 100
INTEREST_KEPT = 1_000
_RANK = {Stage.AWARENESS: 0, Stage.CONSIDERATION: 1, Stage.DECISION: 2}
# What sales needs to engage (DESIGN.md); an alert says which of these are still unknown.
SALES_FIELDS = ("company_size", "seniority", "problem", "budget_authority", "timeline")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class SentEmail(_Frozen):
    sequence: Stage
    content_id: str
    at: datetime


class StageChange(_Frozen):
    from_stage: Stage | None
    to_stage: Stage
    reason: str
    at: datetime
    programme: str


class Lead(_Frozen):
    """A lead's state: a projection of its messages. Collections are tuples so copies can share them."""

    lead_id: str
    traits: LeadTraits = LeadTraits()
    traits_at: datetime | None = None
    stage: Stage | None = Field(default=None, description="None until the lead's email is known")
    stage_entered_at: datetime | None = None
    tallies: Tallies = Field(default_factory=Tallies, description="Messages per intent rule per day: the score")
    remembered: dict[date, tuple[str, ...]] = Field(
        default_factory=dict,
        description="Ids of the messages that changed the tallies, by the day they were applied (for dedupe)",
    )
    activity_day: date | None = None
    activity_count: int = Field(default=0, description="Messages applied on `activity_day`")
    interests: dict[str, int] = Field(
        default_factory=dict, description="Messages per programme topic (what the lead reads and does), up to 1,000"
    )
    automation_flagged_at: datetime | None = Field(
        default=None, description="When the lead first sent more events in a day than a person would"
    )
    last_engagement_at: datetime | None = None
    decided_at: datetime | None = Field(
        default=None,
        description="The clock time at which the lead last engaged (or was placed by its score): an email "
        "open applied at that same moment still counts towards moving it up",
    )
    routed_before_known: str | None = Field(
        default=None,
        description="A route-to-sales signal (its label) seen while the visitor was anonymous: applied on identify",
    )
    sent: tuple[SentEmail, ...] = ()
    next_send_at: datetime | None = None
    exhausted: bool = Field(
        default=False, description="Every email of the current sequence was sent: the lead waits on new content"
    )
    history: tuple[StageChange, ...] = ()
    skipped: tuple[str, ...] = Field(
        default=(), description="Emails that could not be rendered for this lead: not sent, never tried again"
    )
    sales_status: str | None = None
    sales_history: tuple[SalesRecord, ...] = Field(default=(), description="Every status sales gave, oldest first")
    qualified_at: datetime | None = Field(default=None, description="When sales was last alerted (an MQL)")
    email_seen: tuple[str, ...] = Field(
        default=(), description="`<email id>:opened|clicked` already counted: an open or click counts once (metrics)"
    )
    recent_messages: tuple[str, ...] = ()

    @property
    def email(self) -> str | None:
        return self.traits.email

    def has_applied(self, message_id: str) -> bool:
        """Whether this message was applied already (`step` ignores it): it is among the recent messages, or
        among those remembered as having changed the score."""
        return message_id in self.recent_messages or any(message_id in ids for ids in self.remembered.values())

    @property
    def emails_done(self) -> set[str]:
        """Emails the lead got or could not get: never chosen again."""
        return {email.content_id for email in self.sent} | set(self.skipped)

    def intent(self, programme: Programme, now: datetime) -> float:
        return intent_score(self.tallies, programme, now)

    def next_action_at(self, programme: Programme) -> datetime | None:
        """When the dispatcher must next look at this lead (a send, a timeout, a return or a suppression).

        Every lead in a sequence has one, so nothing waits forever (docs/programme.md, "Nothing waits
        forever")."""
        if self.stage is None or not self.stage.is_sequence or self.stage_entered_at is None:
            return None
        candidates = []
        if self.next_send_at is not None and not self.exhausted:
            candidates.append(self.next_send_at)
        timeout_at = self.timeout_at(programme)
        if timeout_at is not None:
            candidates.append(timeout_at)
        return_at = self.return_at(programme)
        if return_at is not None:
            candidates.append(return_at)
        suppress_at = self.suppression_at(programme)
        if suppress_at is not None:
            candidates.append(suppress_at)
        return min(candidates, default=None)

    def return_at(self, programme: Programme) -> datetime | None:
        """Consideration's way back: `thresholds.grace_days` after its intent fell below the consideration
        threshold to stay (counted from entering Consideration if it was already below then)."""
        if self.stage is not Stage.CONSIDERATION or self.stage_entered_at is None:
            return None
        thresholds = programme.thresholds
        below = below_since(self.tallies, programme, thresholds.consideration, self.stage_entered_at)
        return below + timedelta(days=thresholds.grace_days)

    def timeout_at(self, programme: Programme) -> datetime | None:
        assert self.stage is not None
        assert self.stage_entered_at is not None
        timeout = programme.sequence(self.stage).timeout
        if timeout is None:
            return None
        start = self.stage_entered_at
        if timeout.measured_from == "last_engagement" and self.last_engagement_at is not None:
            start = max(start, self.last_engagement_at)
        return start + timedelta(days=timeout.after_days)

    def suppression_at(self, programme: Programme) -> datetime | None:
        """Re-engagement's last word: one cadence after the episode's final unanswered email.

        Emails are counted per episode (since the lead last entered Re-engagement). An episode that runs
        out of unsent emails first gives the lead the time its missing emails would have taken, one
        cadence each, and then suppresses it: never sooner than a full episode, never later."""
        if self.stage is not Stage.RE_ENGAGEMENT or self.stage_entered_at is None:
            return None
        sequence = programme.sequences.re_engagement
        limit = sequence.suppress_after_emails or len(sequence.emails)
        cadence = timedelta(days=sequence.cadence_days)
        sent_here = self.sent_in_current_sequence()
        if len(sent_here) >= limit:
            return sent_here[limit - 1].at + cadence
        if not self.exhausted:
            return None
        last = sent_here[-1].at + cadence if sent_here else self.stage_entered_at
        return max(last, self.stage_entered_at + limit * cadence)

    def sent_in_current_sequence(self) -> list[SentEmail]:
        return [
            email
            for email in self.sent
            if email.sequence == self.stage and self.stage_entered_at is not None and email.at >= self.stage_entered_at
        ]


class Transition(_Frozen):
    kind: Literal["transition"] = "transition"
    lead_id: str
    from_stage: Stage | None
    to_stage: Stage
    reason: str
    at: datetime
    programme: str


class Send(_Frozen):
    kind: Literal["send"] = "send"
    lead_id: str
    sequence: Stage
    content_id: str
    step: int = Field(description="Position of the email in its sequence, from 1")
    at: datetime


class SalesAlert(_Frozen):
    kind: Literal["alert"] = "alert"
    lead_id: str
    reason: str
    at: datetime
    stage: Stage
    intent: float
    fit: int
    traits: LeadTraits
    missing: tuple[str, ...] = Field(description="What sales needs that the lead has not told us yet")
    probable_automation: bool = Field(
        default=False, description="The lead sent more events in a day than a person would: check before calling"
    )


class Measured(_Frozen):
    """What a step adds to the programme's monthly counts (`nurture.domain.metrics`): published to the metrics
    store, never to the bus."""

    kind: Literal["measure"] = "measure"
    lead_id: str
    at: datetime
    counts: tuple[tuple[str, str, float], ...] = Field(description="(month, counter, amount)")


Effect = Transition | Send | SalesAlert | Measured


class Tick(_Frozen):
    """The clock moved on: apply timeouts and send what is due."""

    kind: Literal["tick"] = "tick"


class EmailSkipped(_Frozen):
    """The sender could not render an email decided for the lead (broken content): it was not sent, it does not
    count as sent, and the next email of the sequence is tried."""

    kind: Literal["skipped"] = "skipped"
    sequence: Stage
    content_id: str
    reason: str


SalesStatus = Literal["accepted", "rejected", "engaged", "demo_booked", "opportunity", "won", "lost"]
# Sales has the lead: nurture email stops (the lead moves to sales_engaged from any sequence).
SALES_HAS_THE_LEAD = frozenset({"accepted", "engaged", "demo_booked", "opportunity", "won"})
SALES_HISTORY_KEPT = 50


class SalesUpdate(_Frozen):
    """What sales says of the lead. `accepted`, `engaged`, `demo_booked`, `opportunity` and `won` mean sales has
    it and nurture email stops; `rejected` (with a reason) and `lost` are recorded and nurture goes on (a lead
    sales had resumes nurture where its intent places it)."""

    kind: Literal["sales"] = "sales"
    status: SalesStatus
    amount: float | None = Field(default=None, description="The deal's amount (opportunity, won)")
    reason: str | None = Field(default=None, description="Why (rejected, lost)")


class SalesRecord(_Frozen):
    """One status sales gave the lead, with when: kept for the monthly review (MQL-to-SQL, revenue)."""

    status: SalesStatus
    at: datetime
    amount: float | None = None
    reason: str | None = None


JourneyInput = Message | Tick | SalesUpdate | EmailSkipped


class Outcome(_Frozen):
    lead: Lead
    effects: tuple[Effect, ...]
    next_action_at: datetime | None


def new_lead(lead_id: str) -> Lead:
    return Lead(lead_id=lead_id)


def place(lead: Lead, programme: Programme, now: datetime) -> tuple[Lead, list[Effect]]:
    """Place a lead by the rules alone, as of `now`: excluded or re-included by fit, and moved up by intent from
    awareness or consideration (entering Decision alerts sales). No email is decided and no timeout applied:
    what `nurture rebuild` runs after re-scoring a lead's history."""
    journey = _Journey(lead, programme, now)
    journey.settle()
    if journey.lead.stage in (Stage.AWARENESS, Stage.CONSIDERATION):
        journey.promote()
    return journey.lead, list(journey.effects)


def step(lead: Lead, given: JourneyInput, programme: Programme, now: datetime) -> Outcome:
    """Apply one input to a lead at `now`. Applying the same message twice changes nothing."""
    journey = _Journey(lead, programme, now)
    if isinstance(given, Tick):
        journey.tick()
    elif isinstance(given, SalesUpdate):
        journey.sales(given)
    elif isinstance(given, EmailSkipped):
        journey.skipped(given)
    elif journey.first_time(given.message_id):
        if isinstance(given, IdentifyMessage):
            journey.identify(given)
        else:
            journey.behaviour(given)
    journey.compact()
    journey.measure(lead, given)
    return Outcome(
        lead=journey.lead,
        effects=tuple(journey.effects),
        next_action_at=journey.lead.next_action_at(programme),
    )


def merge(lead: Lead, anonymous: Lead, programme: Programme) -> Lead:
    """Fold an anonymous visitor's history into the lead they turned out to be.

    Nothing the person already got or said is forgotten: emails sent to either are never sent again,
    and an opt-out or suppression on either side stops nurture for the merged lead. A lead that had no
    stage yet (its email was unknown) takes over the visitor's place in the journey."""
    engagement = [t for t in (lead.last_engagement_at, anonymous.last_engagement_at) if t is not None]
    sent_keys = {(email.sequence, email.content_id) for email in lead.sent}
    update: dict[str, object] = {
        "tallies": lead.tallies.merged(anonymous.tallies, programme),
        "remembered": {
            day: tuple(dict.fromkeys(anonymous.remembered.get(day, ()) + lead.remembered.get(day, ())))
            for day in sorted({*lead.remembered, *anonymous.remembered})
        },
        "interests": {
            topic: min(INTEREST_KEPT, lead.interests.get(topic, 0) + anonymous.interests.get(topic, 0))
            for topic in {*lead.interests, *anonymous.interests}
        },
        "automation_flagged_at": min(
            (t for t in (lead.automation_flagged_at, anonymous.automation_flagged_at) if t is not None), default=None
        ),
        "last_engagement_at": max(engagement, default=None),
        "routed_before_known": lead.routed_before_known or anonymous.routed_before_known,
        "decided_at": max((t for t in (lead.decided_at, anonymous.decided_at) if t is not None), default=None),
        "traits": anonymous.traits.merged(lead.traits),
        "recent_messages": (anonymous.recent_messages + lead.recent_messages)[-RECENT_MESSAGES_KEPT:],
        "sent": tuple(
            sorted(
                lead.sent + tuple(e for e in anonymous.sent if (e.sequence, e.content_id) not in sent_keys),
                key=lambda email: email.at,
            )
        ),
        "history": tuple(sorted(lead.history + anonymous.history, key=lambda change: change.at))[-HISTORY_KEPT:],
        "skipped": tuple(dict.fromkeys(lead.skipped + anonymous.skipped)),
        "sales_history": tuple(sorted(lead.sales_history + anonymous.sales_history, key=lambda r: r.at))[
            -SALES_HISTORY_KEPT:
        ],
        "sales_status": lead.sales_status or anonymous.sales_status,
        "qualified_at": max((t for t in (lead.qualified_at, anonymous.qualified_at) if t is not None), default=None),
        "email_seen": tuple(dict.fromkeys(anonymous.email_seen + lead.email_seen)),
    }
    stops_nurture = anonymous.stage in (Stage.OPTED_OUT, Stage.SUPPRESSED)
    if anonymous.stage is not None and (lead.stage is None or (stops_nurture and lead.stage.is_sequence)):
        update |= {
            "stage": anonymous.stage,
            "stage_entered_at": anonymous.stage_entered_at,
            "next_send_at": anonymous.next_send_at,
            "exhausted": anonymous.exhausted,
        }
    return replaced(lead, update)


def strongest_topic(lead: Lead, programme: Programme) -> str | None:
    """The topic the lead has read and done most about (the programme's order breaks ties), if any."""
    if not lead.interests:
        return None
    counts = [(lead.interests.get(name, 0), -i, name) for i, name in enumerate(programme.topics)]
    best = max(counts, default=(0, 0, None))
    return best[2] if best[0] > 0 else None


def persona_of(traits: LeadTraits, programme: Programme) -> str | None:
    """The first programme persona whose every listed trait the lead matches, if any."""
    for name, persona in programme.personas.items():
        if persona.seniority and traits.seniority not in persona.seniority:
            continue
        if persona.industry and traits.industry not in persona.industry:
            continue
        size = traits.company_size
        if persona.min_company_size is not None and (size is None or size < persona.min_company_size):
            continue
        if persona.max_company_size is not None and (size is None or size > persona.max_company_size):
            continue
        if (
            persona.seniority
            or persona.industry
            or (persona.min_company_size, persona.max_company_size) != (None, None)
        ):
            return name  # a persona that lists no trait matches nobody
    return None


def best_match(lead: Lead, unsent: list[tuple[int, str]], programme: Programme) -> tuple[int, str]:
    """The unsent email that best matches the lead's strongest topic, then its persona; the sequence's order
    decides among equals (so a lead with no topic or persona gets the sequence in order)."""
    topic = strongest_topic(lead, programme)
    persona = persona_of(lead.traits, programme)
    if topic is None and persona is None:
        return unsent[0]

    def fit(candidate: tuple[int, str]) -> tuple[bool, bool, int]:
        tags = programme.email_tags.get(candidate[1])
        if tags is None:
            return (False, False, -candidate[0])
        return (topic in tags.topics, persona in tags.personas, -candidate[0])

    return max(unsent, key=fit)


class _Journey:
    """Builds one step's outcome: the lead as it evolves and the effects it emits."""

    def __init__(self, lead: Lead, programme: Programme, now: datetime) -> None:
        self.lead = lead
        self.programme = programme
        self.now = now
        self.effects: list[Effect] = []

    def update(self, **changes: object) -> None:
        self.lead = replaced(self.lead, changes)

    def measure(self, before: Lead, given: JourneyInput) -> None:
        """Add what this step counts for the monthly review (docs/metrics.md) as one `Measured` effect."""
        from nurture.domain.metrics import measure

        counts, seen = measure(before, self.lead, given, self.effects, self.programme, self.now)
        if seen != self.lead.email_seen:
            self.update(email_seen=seen)
        if counts:
            self.effects.append(Measured(lead_id=self.lead.lead_id, at=self.now, counts=tuple(counts)))

    def first_time(self, message_id: str) -> bool:
        lead = self.lead
        if lead.has_applied(message_id):
            return False
        today = day_of(self.now)
        count = lead.activity_count + 1 if lead.activity_day == today else 1
        self.update(
            recent_messages=(*lead.recent_messages, message_id)[-RECENT_MESSAGES_KEPT:],
            activity_day=today,
            activity_count=count,
        )
        if count > self.programme.intent.automation_events_per_day and lead.automation_flagged_at is None:
            self.update(automation_flagged_at=self.now)
        return True

    def compact(self) -> None:
        """Keep the lead's item bounded: fold days that no longer score, forget ids no stream can redeliver."""
        lead = self.lead
        tallies = lead.tallies.compacted(self.programme, self.now)
        oldest = day_of(self.now) - timedelta(days=REMEMBER_DAYS)
        remembered = lead.remembered
        if any(day < oldest for day in remembered):
            remembered = {day: ids for day, ids in remembered.items() if day >= oldest}
        if tallies is not lead.tallies or remembered is not lead.remembered:
            self.update(tallies=tallies, remembered=remembered)

    def remember(self, message_id: str) -> None:
        today = day_of(self.now)
        remembered = dict(self.lead.remembered)
        remembered[today] = (*remembered.get(today, ()), message_id)
        while sum(len(ids) for ids in remembered.values()) > REMEMBERED_KEPT and len(remembered[today]) > 1:
            oldest = min(remembered)
            if oldest == today:
                remembered[today] = remembered[today][1:]
            else:
                del remembered[oldest]
        self.update(remembered=remembered)

    @property
    def intent(self) -> float:
        return self.lead.intent(self.programme, self.now)

    # --- inputs -------------------------------------------------------------------------------
    def identify(self, message: IdentifyMessage) -> None:
        lead = self.lead
        if lead.traits_at is None or message.timestamp >= lead.traits_at:
            self.update(traits=lead.traits.merged(message.traits), traits_at=message.timestamp)
        else:  # an older identify only fills in what we do not know yet
            self.update(traits=message.traits.merged(lead.traits))
        self.settle()
        routed = self.lead.routed_before_known
        if routed is not None and self.lead.stage is not None:
            # A demo request made before we knew who asked reaches sales now, as if it came after the identify.
            self.update(routed_before_known=None)
            self.route_to_sales(routed)

    def behaviour(self, message: BehaviourMessage) -> None:
        self.note_interests(message)
        rules = matching_rules(message, self.programme)
        day = day_of(message.timestamp)
        before = self.lead.tallies
        tallies, changed = before.add(rules, day, self.programme)
        if changed:
            self.update(tallies=tallies)
            self.remember(message.message_id)
        # A bounce is what a mail server said, and an open or click flagged as a link scanner's is no person's.
        engaged = not (
            isinstance(message, TrackMessage)
            and (message.event in self.programme.intent.not_engagement or message.event == BOUNCED)
        ) and not is_automated(message)
        if engaged and (self.lead.last_engagement_at is None or message.timestamp > self.lead.last_engagement_at):
            self.update(last_engagement_at=message.timestamp)
        by_id = self.programme.rules_by_id
        # A route-to-sales rule alerts once per day of requests: a bot's thousand demo requests raise one alert.
        route_to_sales = [by_id[r] for r in changed if by_id[r].route_to_sales and before.count(r, day) == 0]
        if self.lead.stage is None:
            # An anonymous visitor: the score grows quietly until we learn who they are.
            if route_to_sales and self.lead.routed_before_known is None:
                self.update(routed_before_known=route_to_sales[0].label)
            return
        if isinstance(message, TrackMessage) and self.lifecycle(message):
            return
        if engaged:
            self.update(decided_at=self.now)
        if route_to_sales:
            self.route_to_sales(route_to_sales[0].label)
        elif engaged:
            self.promote()
        elif rules and self.lead.decided_at == self.now and self.lead.stage in _RANK:
            # An open never moves a lead on its own, but one applied at the same moment as an engagement
            # counts with it, whichever came first: the stage a batch reaches does not depend on its order.
            self.promote()

    def note_interests(self, message: BehaviourMessage) -> None:
        """Count the message towards every programme topic it belongs to (page path, the path of a clicked email
        link, or track event); a scanner's click belongs to none."""
        if is_automated(message):
            return
        path = message.path if not isinstance(message, TrackMessage) else clicked_path(message)
        topics = [
            name
            for name, topic in self.programme.topics.items()
            if (isinstance(message, TrackMessage) and message.event in topic.events)
            or (path is not None and path_matches(path, topic.paths))
        ]
        if topics:
            interests = dict(self.lead.interests)
            for name in topics:
                interests[name] = min(INTEREST_KEPT, interests.get(name, 0) + 1)
            self.update(interests=interests)

    def skipped(self, given: EmailSkipped) -> None:
        lead = self.lead
        kept = tuple(e for e in lead.sent if (e.sequence, e.content_id) != (given.sequence, given.content_id))
        if len(kept) == len(lead.sent):
            return  # not decided for this lead, or already taken back: applying it twice changes nothing
        self.update(sent=kept, skipped=(*lead.skipped, given.content_id))
        if lead.stage is given.sequence and lead.stage.is_sequence:
            emails = self.programme.sequence(lead.stage).emails
            self.update(
                exhausted=all(e in self.lead.emails_done for e in emails), next_send_at=self.send_time(self.now)
            )

    def sales(self, update: SalesUpdate) -> None:
        self.record_sales(update.status, amount=update.amount, reason=update.reason)
        stage = self.lead.stage
        said = f"sales update: {update.status.replace('_', ' ')}"
        if update.status in SALES_HAS_THE_LEAD and stage is not None and stage.is_sequence:
            self.move(Stage.SALES_ENGAGED, said)
        elif update.status not in SALES_HAS_THE_LEAD and stage is Stage.SALES_ENGAGED:
            # Sales gave the lead back (rejected after all, or the deal was lost): nurture resumes where its intent
            # places it, without alerting sales again on entering Decision.
            why = f"{said} ({update.reason})" if update.reason else said
            self.move(self.programme.stage_for_intent(self.intent), f"{why}: back to nurture", alert=False)

    def record_sales(self, status: SalesStatus, amount: float | None = None, reason: str | None = None) -> None:
        record = SalesRecord(status=status, at=self.now, amount=amount, reason=reason)
        self.update(sales_status=status, sales_history=(*self.lead.sales_history, record)[-SALES_HISTORY_KEPT:])

    def tick(self) -> None:
        stage = self.lead.stage
        if stage is None or not stage.is_sequence:
            return
        timeout_at = self.lead.timeout_at(self.programme)
        if timeout_at is not None and self.now >= timeout_at:
            timeout = self.programme.sequence(stage).timeout
            assert timeout is not None
            self.move(Stage(timeout.to), self.timeout_reason(stage, timeout.after_days))
        return_at = self.lead.return_at(self.programme)
        if return_at is not None and self.now >= return_at:
            thresholds = self.programme.thresholds
            self.move(
                Stage.AWARENESS,
                f"intent {self.intent:.0f} below the consideration threshold ({thresholds.consideration}) "
                f"for {thresholds.grace_days} days",
            )
        suppress_at = self.lead.suppression_at(self.programme)
        if suppress_at is not None and self.now >= suppress_at:
            count = len(self.lead.sent_in_current_sequence())
            limit = self.programme.sequences.re_engagement.suppress_after_emails or count
            out_of_content = " (no re-engagement emails left to send)" if count < limit else ""
            self.move(Stage.SUPPRESSED, f"{count} re-engagement emails without engagement{out_of_content}")
            return
        if self.lead.next_send_at is not None and self.now >= self.lead.next_send_at and not self.lead.exhausted:
            self.send()

    # --- rules --------------------------------------------------------------------------------
    def settle(self) -> None:
        """After new traits: create the lead, or exclude (or re-include) it by fit."""
        lead = self.lead
        excluded_because = fit_score(lead.traits, self.programme).excluded_because
        if lead.email is None:
            return
        if excluded_because is not None:
            if lead.stage is not Stage.EXCLUDED:
                self.move(Stage.EXCLUDED, excluded_because)
        elif lead.stage is Stage.EXCLUDED:
            self.update(decided_at=self.now)
            self.move(self.programme.stage_for_intent(self.intent), "no longer matches an exclusion")
        elif lead.stage is None:
            intent = self.intent
            self.update(decided_at=self.now)
            # a demo request made before identify alerts sales once, from route_to_sales, not on entry too
            entry_alert = lead.routed_before_known is None
            self.move(self.programme.stage_for_intent(intent), f"new lead, intent {intent:.0f}", alert=entry_alert)

    def lifecycle(self, message: TrackMessage) -> bool:
        """Opt-outs, complaints, hard bounces and demo bookings. True when the message was one."""
        stage = self.lead.stage
        if message.event in (UNSUBSCRIBED, COMPLAINED):
            if stage not in (Stage.OPTED_OUT, Stage.EXCLUDED):
                why = "unsubscribed" if message.event == UNSUBSCRIBED else "marked an email as spam"
                self.move(Stage.OPTED_OUT, why)
            return True
        if message.event == BOUNCED:
            permanent = str(message.properties.get("bounce_type", "")).lower() == "permanent"
            if permanent and stage is not None and stage.is_sequence:
                subtype = str(message.properties.get("bounce_subtype") or "").strip()
                self.move(Stage.SUPPRESSED, "email address bounced permanently" + (f" ({subtype})" if subtype else ""))
            return True
        if message.event in self.programme.sales_handoff.events:
            # Recorded as sales would say it, so the monthly review counts the leads a scheduler handed over too.
            self.record_sales("demo_booked" if message.event == DEMO_BOOKED else "engaged")
            if stage is not None and stage.is_sequence:
                self.move(Stage.SALES_ENGAGED, message.event.lower())
            return True
        return False

    def route_to_sales(self, label: str) -> None:
        stage = self.lead.stage
        if stage is Stage.EXCLUDED:
            return
        if stage in (Stage.AWARENESS, Stage.CONSIDERATION, Stage.RE_ENGAGEMENT):
            self.move(Stage.DECISION, f"{label.lower()}: routed to sales", alert=False)
        if self.lead.qualified_at == self.now:
            return  # sales was alerted at this very moment (a new lead past 80 that also asked): one alert
        notes = {
            Stage.OPTED_OUT: " (lead has opted out of email)",
            Stage.SUPPRESSED: " (lead is suppressed: its address bounced or it stopped answering; call, do not email)",
        }
        self.alert(f"{label}{notes.get(stage, '') if stage is not None else ''}")

    def promote(self) -> None:
        stage = self.lead.stage
        intent = self.intent
        target = self.programme.stage_for_intent(intent)
        if stage is Stage.RE_ENGAGEMENT:
            self.move(target, f"engaged again, intent {intent:.0f}")
        elif stage in _RANK and _RANK[target] > _RANK[stage]:
            threshold = getattr(self.programme.thresholds, target.value)
            self.move(target, f"intent {intent:.0f} reached the {target.value} threshold ({threshold})")

    @staticmethod
    def timeout_reason(stage: Stage, days: int) -> str:
        if stage is Stage.DECISION:
            return f"{days} days without engagement"
        return f"{days} days in {stage.value.replace('_', '-')}"

    # --- effects ------------------------------------------------------------------------------
    def move(self, to: Stage, reason: str, alert: bool = True) -> None:
        lead = self.lead
        self.effects.append(
            Transition(
                lead_id=lead.lead_id,
                from_stage=lead.stage,
                to_stage=to,
                reason=reason,
                at=self.now,
                programme=self.programme.revision,
            )
        )
        change = StageChange(
            from_stage=lead.stage, to_stage=to, reason=reason, at=self.now, programme=self.programme.revision
        )
        next_send_at = self.send_time(self.now) if to.is_sequence else None
        already = lead.emails_done
        exhausted = to.is_sequence and all(e in already for e in self.programme.sequence(to).emails)
        self.update(
            stage=to,
            stage_entered_at=self.now,
            exhausted=exhausted,
            next_send_at=next_send_at,
            history=(*lead.history, change)[-HISTORY_KEPT:],
        )
        if alert and to.is_sequence and self.programme.sequence(to).alert_sales_on_entry:
            self.alert(reason)

    def alert(self, reason: str) -> None:
        lead = self.lead
        assert lead.stage is not None
        traits = lead.traits
        self.effects.append(
            SalesAlert(
                lead_id=lead.lead_id,
                reason=reason,
                at=self.now,
                stage=lead.stage,
                intent=round(self.intent, 1),
                fit=fit_score(traits, self.programme).score,
                traits=traits,
                missing=tuple(name for name in SALES_FIELDS if getattr(traits, name) is None),
                probable_automation=lead.automation_flagged_at is not None,
            )
        )
        self.update(qualified_at=self.now)

    def send(self) -> None:
        lead = self.lead
        assert lead.stage is not None
        allowed = self.send_time(self.now)
        if allowed > self.now:  # outside the window or over the frequency cap: try again then
            self.update(next_send_at=allowed)
            return
        sequence = self.programme.sequence(lead.stage)
        already = lead.emails_done
        unsent = [(i, content_id) for i, content_id in enumerate(sequence.emails, 1) if content_id not in already]
        if not unsent:
            self.update(exhausted=True, next_send_at=None)
            return
        position, content_id = best_match(lead, unsent, self.programme)
        self.effects.append(
            Send(lead_id=lead.lead_id, sequence=lead.stage, content_id=content_id, step=position, at=self.now)
        )
        self.update(
            sent=(*lead.sent, SentEmail(sequence=lead.stage, content_id=content_id, at=self.now)),
            exhausted=len(unsent) == 1,
        )
        self.update(next_send_at=self.send_time(self.now + timedelta(days=sequence.cadence_days)))

    def send_time(self, at: datetime) -> datetime:
        tz = ZoneInfo(self.lead.traits.timezone) if self.lead.traits.timezone else self.programme.timezone
        schedule = self.programme.schedule
        # Only emails still inside the frequency cap's window at `at` can hold a send back (the times tried only
        # move later), so the lead's older emails are left out.
        since = at - timedelta(days=schedule.frequency_cap.per_days)
        recent = [email.at for email in self.lead.sent if email.at > since]
        return next_send_time(at, recent, schedule, tz)
