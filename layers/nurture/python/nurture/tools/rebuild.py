"""`nurture rebuild`: re-project leads from the events table, with the current or a proposed programme.

The events table is the truth and the lead item a projection of it. A rebuild makes the projection
agree with the events again, after an outage that lost stream records (the scorer never saw some
events) or for a programme change, in two steps per lead, both through the lead service's
conditional write and outbox (`pipeline/leads.py`):

1. **Catch up.** Events the lead has never applied (their message id is neither in its recent
   messages nor in its signals), and events of profiles no lead is linked to, are handed to
   `LeadService.receive` exactly as the scorer hands it a late stream batch: same identity rule, same
   journey, same effects. Their transitions and alerts are published: the lead never reacted to
   those messages, so nothing is repeated.
   With `--all`, a lead whose item is gone while its profile links remain is first restored under its id
   from its events and send records, publishing nothing (what it announced before is unknown).
2. **Re-project.** The lead's signals are computed again from its events with the programme (rules
   may have changed), then the journey's own rules place it: exclusion or re-inclusion by fit, and a
   move *up* by intent (as an engagement now would). A lead whose projection is unchanged is not written.

What a rebuild never does: tick the lead (no email is decided by a rebuild: the dispatcher sends on
the lead's usual schedule, never an email already in `Lead.sent`), replay timeouts, or move a lead
down (the grace period does that, on the dispatcher's tick). The lead keeps its history, the emails it
was sent and its sales status; the only effects published are the stage changes (and a sales alert
for an entry into Decision) that the rebuild really makes. A lead that is already right changes
nothing: no write, no effect.

It is a tool, not a Lambda use case: it runs from an operator's machine with the standard
credential chain, scans tables (never done by a Lambda), and stays out of the Lambda layer.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from nurture import constants as c
from nurture.adapters.dynamodb import EventTable, LeadTable, stored_event
from nurture.domain.journey import (
    Effect,
    JourneyInput,
    Lead,
    SalesAlert,
    SentEmail,
    Transition,
    new_lead,
    place,
    step,
)
from nurture.domain.messages import IdentifyMessage, Message
from nurture.domain.programme import Programme, Stage, load_programme
from nurture.domain.scoring import day_of, tally
from nurture.pipeline.leads import LeadService
from nurture.pipeline.ports import (
    Conflict,
    EventBus,
    EventStore,
    LeadStore,
    Ports,
    SendQueue,
    SendRequest,
    SentRecord,
    StoredEvent,
    StoredLead,
)

LOCAL_STATE_ENV = "NURTURE_LOCAL_STATE"


# --- where the stack is ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """The resources a rebuild reads and writes, and how to reach them."""

    events_table: str
    leads_table: str
    event_bus: str
    send_queue_url: str  # a URL, or (a local stack) the queue's name
    content_bucket: str | None = None
    endpoint_url: str | None = None
    region: str | None = None
    local_url: str | None = None  # the running `nurture local`'s HTTP front door (its clock)


def local_state_path() -> Path:
    """Where a running `nurture local` says where it is (its URL and moto's endpoint)."""
    return Path(os.environ.get(LOCAL_STATE_ENV) or Path(tempfile.gettempdir()) / "nurture-local.json")


def write_local_state(url: str, endpoint_url: str, region: str) -> Path:
    path = local_state_path()
    path.write_text(json.dumps({"url": url, "endpoint_url": endpoint_url, "region": region, "pid": os.getpid()}))
    return path


def remove_local_state() -> None:
    path = local_state_path()
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def add_target_options(command: argparse.ArgumentParser) -> None:
    """Where a command that reads or writes the stack's tables finds them (`rebuild`, `forget`, `export`)."""
    where = command.add_mutually_exclusive_group()
    where.add_argument("--stack", metavar="NAME", help="a deployed CloudFormation stack (standard credential chain)")
    where.add_argument("--endpoint-url", help="a local stack's AWS endpoint (default: the running `nurture local`)")
    command.add_argument("--region", default=None, help="AWS region (default: the credential chain's)")


def find_target(stack: str | None, endpoint_url: str | None, region: str | None) -> Target:
    """The deployed stack named `stack`, else a local stack (at `endpoint_url`, or the running one). LookupError
    when there is none."""
    import boto3

    if stack:
        return stack_target(boto3.session.Session(region_name=region).client("cloudformation"), stack, region)
    return local_target(endpoint_url, region)


def session_for(target: Target, region: str | None) -> Any:
    """A boto3 session that reaches `target`: the credential chain for a deployed stack, moto's stand-in
    credentials for a local one (moto takes any; the chain may have none)."""
    import boto3

    if target.endpoint_url is None:
        return boto3.session.Session(region_name=region)
    return boto3.session.Session(
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 - moto's stand-in credentials
        region_name=target.region,
    )


def local_target(endpoint_url: str | None = None, region: str | None = None) -> Target:
    """The local stack: the names `nurture local` creates, at `endpoint_url` or the running one's endpoint."""
    from nurture.tools.local import resources

    local_url = None
    if endpoint_url is None:
        try:
            state = json.loads(local_state_path().read_text())
        except (OSError, ValueError) as error:
            raise LookupError(
                f"no running `nurture local` found ({local_state_path()}): start one, or pass --endpoint-url or --stack"
            ) from error
        endpoint_url, region, local_url = state["endpoint_url"], state["region"], state["url"]
    return Target(
        events_table=c.EVENTS_TABLE,
        leads_table=c.LEADS_TABLE,
        event_bus=c.EVENT_BUS,
        send_queue_url=c.SEND_QUEUE,  # a name: the command asks the endpoint for its URL
        content_bucket=resources.CONTENT_BUCKET,
        endpoint_url=endpoint_url,
        region=region or resources.REGION,
        local_url=local_url,
    )


# Logical ids of the CDK app's resources start with their construct path (infra/stack.py, infra/constructs/).
_STACK_RESOURCES = {
    "events_table": ("AWS::DynamoDB::Table", "StorageEvents", c.EVENTS_TABLE),
    "leads_table": ("AWS::DynamoDB::Table", "StorageLeads", c.LEADS_TABLE),
    "event_bus": ("AWS::Events::EventBus", "Bus", c.EVENT_BUS),
    "send_queue_url": ("AWS::SQS::Queue", "DispatchSendQueue", c.SEND_QUEUE),
}


def stack_target(cloudformation: Any, stack_name: str, region: str | None = None) -> Target:
    """A deployed stack's resources, from CloudFormation: the physical ids of its tables, bus and send queue
    (matched by resource type and logical id, or by the name the app gives them), and its content bucket output."""
    resources = cloudformation.describe_stack_resources(StackName=stack_name)["StackResources"]
    found: dict[str, str] = {}
    for name, (kind, logical_prefix, physical_name) in _STACK_RESOURCES.items():
        candidates = [r for r in resources if r["ResourceType"] == kind]
        by_logical = [r for r in candidates if r["LogicalResourceId"].startswith(logical_prefix)]
        by_name = [r for r in candidates if (r.get("PhysicalResourceId") or "").rsplit("/", 1)[-1] == physical_name]
        chosen = by_logical or by_name
        if len(chosen) != 1:
            raise LookupError(f"stack {stack_name}: cannot tell which {kind} is the {name.replace('_', ' ')}")
        physical = chosen[0].get("PhysicalResourceId")
        if not physical and kind == "AWS::Events::EventBus":
            physical = physical_name  # the app names its bus (infra/constructs/bus.py); moto reports no physical id
        if not physical:
            raise LookupError(f"stack {stack_name}: the {name.replace('_', ' ')} has no physical id yet")
        found[name] = physical
    [stack] = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    return Target(content_bucket=outputs.get("ContentBucketName"), region=region, **found)


# --- the use case ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class LeadChange:
    """What a rebuild did (or would do) to one lead."""

    lead_id: str
    stage_before: Stage | None
    stage_after: Stage | None
    intent_before: float | None
    intent_after: float | None
    created: bool = False
    restored: bool = False  # its item was gone, its links were not: made again under its id, nothing published
    removed: bool = False  # folded into another lead by a catch-up identify
    effects: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return (
            self.created
            or self.removed
            or self.stage_before != self.stage_after
            or (self.intent_before != self.intent_after)
            or bool(self.effects)
        )


@dataclass
class Report:
    changes: list[LeadChange] = field(default_factory=list)
    published: list[Effect] = field(default_factory=list)
    queued: list[SendRequest] = field(default_factory=list)
    dry_run: bool = False

    @property
    def changed(self) -> list[LeadChange]:
        return [change for change in self.changes if change.changed]


def reproject(
    lead: Lead, events: Sequence[StoredEvent], programme: Programme, now: datetime
) -> tuple[Lead, list[Effect]]:
    """The lead with its tallies recomputed from `events` under `programme` and placed by the journey's rules at
    `now`: excluded or re-included by fit, moved up by intent. Pure; keeps history, sends and sales status.

    Events are kept `EVENTS_RETENTION_DAYS`, longer than any day scores (`intent.forget_after_days`), so every
    scoring day is recomputed; what the lead already folded into `forgotten` (for `nth`) is kept as it is."""
    horizon = day_of(now) - timedelta(days=programme.intent.forget_after_days)
    scoring = [e.message for e in events if not isinstance(e.message, IdentifyMessage)]
    fresh = tally((m for m in scoring if day_of(m.timestamp) >= horizon), programme)
    tallies = fresh.model_copy(update={"forgotten": dict(lead.tallies.forgotten)}).compacted(programme, now)
    if tallies != lead.tallies:
        lead = lead.model_copy(update={"tallies": tallies})
    if lead.stage is None:
        return lead, []  # still anonymous: placed when its identify arrives
    # The journey's own rules, not a copy of them.
    return place(lead, programme, now)


class _Reprojection(LeadService):
    """The lead service with `reproject` as the step: the same read, conditional write, outbox and retries."""

    events: Sequence[StoredEvent] = ()

    def _run(self, lead: Lead, inputs: Sequence[JourneyInput], now: datetime) -> tuple[Lead, list[Effect]]:
        return reproject(lead, self.events, self.programme, now)


class Rebuild:
    """Re-projects leads onto `ports` with `programme` at `now`; `current` is the programme the stack runs (for
    the intent shown before)."""

    def __init__(
        self,
        events: EventStore,
        leads: LeadStore,
        bus: EventBus,
        queue: SendQueue,
        programme: Programme,
        current: Programme,
        now: datetime,
        dry_run: bool = False,
        new_id: Callable[[], str] | None = None,
    ) -> None:
        self.report = Report(dry_run=dry_run)
        self.programme = programme
        self.current = current
        self.now = now
        self.events = events
        self.leads: LeadStore = _Overlay(leads) if dry_run else leads
        recording_bus = _RecordingBus(None if dry_run else bus, self.report.published)
        recording_queue = _RecordingQueue(None if dry_run else queue, self.report.queued)
        self.ports = Ports(
            events=events,
            leads=self.leads,
            bus=recording_bus,
            queue=recording_queue,
            mailer=_NoMailer(),
            content=_NoContent(),
        )
        self.service = LeadService(self.ports, programme, new_id)

    def catch_up(self, events: Sequence[StoredEvent], skip: Callable[[StoredEvent], bool]) -> None:
        """Hand the events not yet applied to the lead service as the scorer would, one profile at a time."""
        missing = sorted((e for e in events if not skip(e)), key=lambda e: (e.message.timestamp, e.message_id))
        by_profile: dict[str, list[Message]] = {}
        for event in missing:
            by_profile.setdefault(event.profile_id, []).append(event.message)
        for messages in by_profile.values():
            self.service.receive(messages, self.now)

    def lead(self, lead_id: str) -> LeadChange:
        """Catch one lead up with its events, then re-project it."""
        before = self.leads.get(lead_id)
        if before is None:
            raise LookupError(f"no lead {lead_id}")
        effects_before = len(self.report.published)
        events = _unique(self.events.for_profiles(before.profiles))
        self.catch_up(events, lambda e: before.lead.has_applied(e.message_id))
        survivor = self._survivor(lead_id, before.profiles)
        after = self._reproject(survivor, events) if survivor else None
        return self._record(lead_id, before, after, effects_before)

    def unlinked(self, events: Sequence[StoredEvent]) -> list[LeadChange]:
        """Catch up the events of profiles no lead is linked to (leads the lost stream records would have made)."""
        links = self.leads.leads_for({e.profile_id for e in events})
        orphans = [e for e in events if e.profile_id not in links]
        if not orphans:
            return []
        published = len(self.report.published)
        self.catch_up(orphans, lambda e: False)
        made = set(self.leads.leads_for({e.profile_id for e in orphans}).values())
        changes = []
        for lead_id in sorted(made):
            stored = self.leads.get(lead_id)
            if stored is not None:
                after = self._reproject(lead_id, _unique(self.events.for_profiles(stored.profiles)))
                changes.append(self._record(lead_id, None, after, published, created=True))
        return changes

    def restore(self, lead_id: str, profiles: frozenset[str]) -> LeadChange:
        """A lead whose item is gone while its profiles still link to it (deleted by hand): made again under its id
        from its events, applied now as the scorer would, and re-projected. The emails its send records say it was
        sent stay sent. Nothing is published: what it announced before is unknown, and announcing it again could
        repeat a sales alert."""
        events = _unique(self.events.for_profiles(profiles))
        records = sorted(self.leads.send_records(lead_id), key=lambda r: r.sent_at)
        lead = new_lead(lead_id).model_copy(
            update={
                "sent": tuple(SentEmail(sequence=r.sequence, content_id=r.content_id, at=r.sent_at) for r in records)
            }
        )
        for event in events:
            lead = step(lead, event.message, self.programme, self.now).lead
        lead, _ = reproject(lead, events, self.programme, self.now)
        after = StoredLead(lead=lead, version=1, profiles=profiles, due_at=lead.next_action_at(self.programme))
        self.leads.save(after, None)
        return self._record(lead_id, None, after, len(self.report.published), created=True, restored=True)

    def _reproject(self, lead_id: str, events: Sequence[StoredEvent]) -> StoredLead | None:
        service = _Reprojection(self.ports, self.programme, self.service.new_id)
        service.events = events
        return service.apply(lead_id, [], self.now)

    def _survivor(self, lead_id: str, profiles: frozenset[str]) -> str | None:
        if self.leads.get(lead_id) is not None:
            return lead_id
        links = self.leads.leads_for(profiles)
        return next(iter(sorted(set(links.values()))), None)

    def _record(
        self,
        lead_id: str,
        before: StoredLead | None,
        after: StoredLead | None,
        effects_from: int,
        created: bool = False,
        restored: bool = False,
    ) -> LeadChange:
        ids = {lead_id} | ({after.lead.lead_id} if after else set())
        effects = [e for e in self.report.published[effects_from:] if e.lead_id in ids]
        change = LeadChange(
            lead_id=lead_id,
            stage_before=before.lead.stage if before else None,
            stage_after=after.lead.stage if after else None,
            intent_before=round(before.lead.intent(self.current, self.now)) if before else None,
            intent_after=round(after.lead.intent(self.programme, self.now)) if after else None,
            created=created,
            restored=restored,
            removed=before is not None and (after is None or after.lead.lead_id != lead_id),
            effects=tuple(_describe(e) for e in effects),
        )
        self.report.changes.append(change)
        return change


def scan_leads(client: Any, table: str) -> tuple[list[str], dict[str, set[str]]]:
    """Every lead id in the leads table, and every lead id its profile links point to with those profiles (a scan of
    its state and link items: a tool's job, never a Lambda's)."""
    lead_ids: list[str] = []
    linked: dict[str, set[str]] = {}
    for page in client.get_paginator("scan").paginate(
        TableName=table,
        FilterExpression="#sk IN (:state, :link)",
        ProjectionExpression="#pk, #sk, lead_id",
        ExpressionAttributeNames={"#pk": c.LEADS_PK, "#sk": c.LEADS_SK},
        ExpressionAttributeValues={":state": {"S": "STATE"}, ":link": {"S": "LINK"}},
    ):
        for item in page["Items"]:
            key = item[c.LEADS_PK]["S"]
            if item[c.LEADS_SK]["S"] == "STATE":
                lead_ids.append(key.removeprefix("LEAD#"))
            else:
                linked.setdefault(item["lead_id"]["S"], set()).add(key.removeprefix("PROFILE#"))
    return lead_ids, linked


def all_events(client: Any, table: str) -> list[StoredEvent]:
    events = []
    for page in client.get_paginator("scan").paginate(TableName=table):
        events += [stored_event({k: next(iter(v.values())) for k, v in item.items()}) for item in page["Items"]]
    return events


def run(
    client: Any,
    target: Target,
    rebuild: Rebuild,
    lead_ids: Sequence[str] | None,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> Report:
    """Rebuild the given leads, or (None) every lead, every lead whose item is gone while its links remain, and every
    profile no lead is linked to."""
    if lead_ids is None:
        existing, linked = scan_leads(client, target.leads_table)
        for lead_id in sorted(set(linked) - set(existing)):
            rebuild.restore(lead_id, frozenset(linked[lead_id]))
        rebuild.unlinked(all_events(client, target.events_table))
        created = {change.lead_id for change in rebuild.report.changes}
        lead_ids = [i for i in scan_leads(client, target.leads_table)[0] if i not in created]
    total = len(lead_ids)
    progress(0, total)
    for done, lead_id in enumerate(lead_ids, 1):
        rebuild.lead(lead_id)
        progress(done, total)
    return rebuild.report


def read_programme_from(content: Any) -> Programme:
    """The programme a stack runs: `programme.yaml` in its content bucket."""
    text, _ = content.read(c.CONTENT_PROGRAMME_KEY)
    return load_programme(text, source=f"s3:{c.CONTENT_PROGRAMME_KEY}")


def tables(client: Any, target: Target) -> tuple[EventTable, LeadTable]:
    return EventTable(client, target.events_table), LeadTable(client, target.leads_table)


def format_report(report: Report) -> list[str]:
    lines = []
    for change in report.changed:
        before = f"{_stage(change.stage_before)} ({_intent(change.intent_before)})"
        after = f"{_stage(change.stage_after)} ({_intent(change.intent_after)})"
        note = (
            " restored from its events (nothing published)"
            if change.restored
            else " new lead"
            if change.created
            else " folded into another lead"
            if change.removed
            else ""
        )
        effects = f"  [{'; '.join(change.effects)}]" if change.effects else ""
        lines.append(f"{change.lead_id}: {before} -> {after}{note}{effects}")
    verb = "would change" if report.dry_run else "changed"
    lines.append(
        f"{len(report.changes)} leads rebuilt, {len(report.changed)} {verb}"
        + (" (dry run: nothing written)" if report.dry_run else "")
    )
    return lines


def _stage(stage: Stage | None) -> str:
    return stage.value if stage is not None else "-"


def _intent(intent: float | None) -> str:
    return "-" if intent is None else f"intent {intent:.0f}"


def _describe(effect: Effect | SendRequest) -> str:
    if isinstance(effect, Transition):
        return f"stage change {_stage(effect.from_stage)} -> {effect.to_stage.value}"
    if isinstance(effect, SalesAlert):
        return f"sales alert: {effect.reason}"
    if isinstance(effect, SendRequest):
        return f"send {effect.sequence.value}/{effect.content_id}"
    return effect.kind


def _unique(events: Iterable[StoredEvent]) -> list[StoredEvent]:
    seen: dict[str, StoredEvent] = {}
    for event in events:
        seen.setdefault(event.message_id, event)
    return sorted(seen.values(), key=lambda e: (e.message.timestamp, e.message_id))


# --- ports for a dry run and for the report ------------------------------------------------------------
class _Overlay:
    """The leads table seen through writes kept in memory: a dry run runs the same code and writes nothing."""

    def __init__(self, real: LeadStore) -> None:
        self.real = real
        self.written: dict[str, StoredLead | None] = {}
        self.links: dict[str, str] = {}

    def get(self, lead_id: str) -> StoredLead | None:
        return self.written[lead_id] if lead_id in self.written else self.real.get(lead_id)

    def find_by_email(self, email: str) -> StoredLead | None:
        return self.real.find_by_email(email)

    def leads_for(self, profile_ids: Iterable[str]) -> dict[str, str]:
        wanted = list(profile_ids)
        return self.real.leads_for(wanted) | {p: self.links[p] for p in wanted if p in self.links}

    def save(
        self,
        stored: StoredLead,
        expected_version: int | None,
        new_profiles: frozenset[str] = frozenset(),
        absorbed: StoredLead | None = None,
    ) -> None:
        current = self.get(stored.lead.lead_id)
        if (current.version if current else None) != expected_version:
            raise Conflict(stored.lead.lead_id)
        self.written[stored.lead.lead_id] = stored
        self.links |= dict.fromkeys(new_profiles, stored.lead.lead_id)
        if absorbed is not None:
            self.written[absorbed.lead.lead_id] = None

    def clear_outbox(self, lead_id: str, effect_ids: Collection[str], version: int, due_at: datetime | None) -> None:
        stored = self.written.get(lead_id)
        if stored is not None and effect_ids:
            outbox = tuple(p for p in stored.outbox if p.id not in effect_ids)
            due = due_at if stored.version == version else stored.due_at
            self.written[lead_id] = replace(stored, outbox=outbox, version=stored.version + 1, due_at=due)

    def due(self, shard: int, now: datetime) -> Iterator[str]:
        return self.real.due(shard, now)

    def record_send(self, record: SentRecord) -> None:
        raise NotImplementedError("a rebuild sends nothing")

    def send_records(self, lead_id: str) -> list[SentRecord]:
        return self.real.send_records(lead_id)

    def lead_ids_by_email(self, email: str) -> list[str]:
        return self.real.lead_ids_by_email(email)

    def erase_lead(self, lead_id: str) -> int:
        raise NotImplementedError("a rebuild erases nothing")

    def unlink(self, profile_ids: Iterable[str], lead_id: str) -> int:
        raise NotImplementedError("a rebuild erases nothing")

    def count_erasure(self, month: str, counts: Mapping[str, int]) -> None:
        raise NotImplementedError("a rebuild erases nothing")


@dataclass
class _RecordingBus:
    real: EventBus | None
    published: list[Effect]

    def publish(self, effects: Sequence[Effect]) -> None:
        if self.real is not None:
            self.real.publish(effects)
        self.published += effects


@dataclass
class _RecordingQueue:
    real: SendQueue | None
    queued: list[SendRequest]

    def enqueue(self, requests: Sequence[SendRequest]) -> None:
        if self.real is not None:
            self.real.enqueue(requests)
        self.queued += requests


class _NoMailer:
    def send(
        self, to: str, subject: str, text: str, html: str, tags: dict[str, str], headers: Mapping[str, str]
    ) -> str:
        raise NotImplementedError("a rebuild sends no email")


class _NoContent:
    def read(self, key: str, etag: str | None = None) -> tuple[str, str] | None:
        raise NotImplementedError("a rebuild reads the programme it is given")
