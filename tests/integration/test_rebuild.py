"""`nurture rebuild` on moto: leads re-projected from the events table after lost stream records, without repeating
what was already done, and a proposed programme tried in a dry run."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from nurture import constants as c
from nurture.adapters.dynamodb import EventTable, LeadTable, lead_key
from nurture.adapters.eventbridge import EventBridgeBus
from nurture.adapters.sqs import SqsSendQueue
from nurture.domain.journey import Lead, Transition
from nurture.domain.messages import Message
from nurture.domain.programme import Programme, Stage, load_programme
from nurture.pipeline.ports import SentRecord, StoredEvent, StoredLead
from nurture.tools.cli import main
from nurture.tools.local.runtime import LocalStack
from nurture.tools.rebuild import Rebuild, format_report, local_target, run, stack_target
from tests.support import identify, page, starter, starter_yaml, track


def _messages(stack: LocalStack, user: str, anonymous: str) -> list[Message]:
    """A visitor reads pricing anonymously, says who they are, and downloads a case study: Consideration (50)."""
    at = stack.now() - timedelta(minutes=10)
    return [
        page("/pricing", at=at, user=None, anonymous=anonymous, message_id=f"{user}-1"),
        identify(
            at=at + timedelta(minutes=5),
            user=user,
            anonymous=anonymous,
            message_id=f"{user}-2",
            email=f"{user}@northwind.example",
            company_size=200,
            seniority="director",
        ),
        track("Case Study Downloaded", at=at + timedelta(minutes=9), user=user, message_id=f"{user}-3"),
    ]


def _store(stack: LocalStack, messages: Sequence[Message]) -> None:
    events = EventTable(stack.client("dynamodb"), c.EVENTS_TABLE)
    for message in messages:
        events.put(StoredEvent(profile_id=message.profile_ids[0], message=message, received_at=stack.now()))


def _lose_stream_records(stack: LocalStack) -> None:
    """An outage longer than the stream's 24 hours: the records are gone before the scorer reads them. The stack's
    poller moves past every record now in the stream without scoring it."""
    streams = stack.client("dynamodbstreams")
    for shard in streams.describe_stream(StreamArn=stack.stream_arn)["StreamDescription"]["Shards"]:
        shard_id = shard["ShardId"]
        iterator = (
            stack._iterators.get(shard_id)
            or streams.get_shard_iterator(
                StreamArn=stack.stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
        )
        while True:
            answer = streams.get_records(ShardIterator=iterator, Limit=1000)
            iterator = answer["NextShardIterator"]
            if not answer["Records"]:
                break
        stack._iterators[shard_id] = iterator


def _rebuild(stack: LocalStack, programme: Programme | None = None, dry_run: bool = False) -> Rebuild:
    client = stack.client("dynamodb")
    return Rebuild(
        EventTable(client, c.EVENTS_TABLE),
        LeadTable(client, c.LEADS_TABLE),
        EventBridgeBus(stack.client("events"), c.EVENT_BUS),
        SqsSendQueue(stack.client("sqs"), stack.send_queue_url),
        programme=programme or starter(),
        current=starter(),
        now=stack.now(),
        dry_run=dry_run,
    )


def _lead_of(stack: LocalStack, user: str) -> StoredLead:
    links = stack.leads.leads_for([f"u#{user}"])
    stored = stack.leads.get(links[f"u#{user}"])
    assert stored is not None
    return stored


def _observed(stack: LocalStack) -> tuple[int, int, int]:
    """What the world has seen: stage changes and alerts on the bus, emails SES accepted."""
    stack.drain()
    return len(stack.captured.stage_changes), len(stack.captured.alerts), len(stack.outbox())


def _same_projection(rebuilt: Lead, normal: Lead, now: Any) -> None:
    assert rebuilt.stage is normal.stage
    assert rebuilt.intent(starter(), now) == normal.intent(starter(), now)
    assert rebuilt.traits.model_dump(exclude={"email"}) == normal.traits.model_dump(exclude={"email"})
    assert rebuilt.tallies == normal.tallies
    assert rebuilt.last_engagement_at == normal.last_engagement_at


@pytest.fixture(scope="module")
def normal(stack: LocalStack) -> StoredLead:
    """The lead the stream builds from the messages (the reference)."""
    stack.drain()
    _store(stack, _messages(stack, "rb-normal", "rb-normal-anon"))
    stack.drain()
    return _lead_of(stack, "rb-normal")


def test_lost_stream_records_are_rebuilt_into_the_lead_the_stream_would_have_built(
    stack: LocalStack, normal: StoredLead
) -> None:
    stack.drain()
    _store(stack, _messages(stack, "rb-lost", "rb-lost-anon"))
    _lose_stream_records(stack)
    stack.drain()
    assert stack.leads.leads_for(["u#rb-lost", "a#rb-lost-anon"]) == {}  # the scorer never saw them
    changes_before = len(stack.captured.stage_changes)

    job = _rebuild(stack)
    events = EventTable(stack.client("dynamodb"), c.EVENTS_TABLE).for_profiles(["u#rb-lost", "a#rb-lost-anon"])
    [created] = job.unlinked(events)

    rebuilt = _lead_of(stack, "rb-lost")
    assert created.created
    assert created.lead_id == rebuilt.lead.lead_id
    assert (created.stage_before, created.stage_after) == (None, Stage.CONSIDERATION)
    _same_projection(rebuilt.lead, normal.lead, stack.now())
    assert set(stack.leads.leads_for(["u#rb-lost", "a#rb-lost-anon"]).values()) == {rebuilt.lead.lead_id}
    # The lead is new to the world: its stage changes are published once, the ones the scorer would have published.
    stack.drain()
    entries = [s for s in stack.captured.stage_changes[changes_before:] if s["lead_id"] == rebuilt.lead.lead_id]
    expected = [(h.from_stage, h.to_stage) for h in normal.lead.history]
    assert [(s["from"], s["to"]) for s in entries] == expected == [(None, "awareness"), ("awareness", "consideration")]
    assert [(h.from_stage, h.to_stage) for h in rebuilt.lead.history] == expected


def test_a_lead_that_missed_some_of_its_events_catches_up(stack: LocalStack) -> None:
    stack.drain()
    pricing, who, case_study = _messages(stack, "rb-partial", "rb-partial-anon")
    _store(stack, [who])
    stack.drain()
    _store(stack, [pricing, case_study])
    _lose_stream_records(stack)
    stack.drain()
    before = _lead_of(stack, "rb-partial")
    assert before.lead.stage is Stage.AWARENESS  # the pricing visit and the case study download were lost

    change = _rebuild(stack).lead(before.lead.lead_id)

    after = _lead_of(stack, "rb-partial")
    assert (change.stage_before, change.stage_after) == (Stage.AWARENESS, Stage.CONSIDERATION)
    assert (change.intent_before, change.intent_after) == (0, 50)
    assert after.lead.stage is Stage.CONSIDERATION
    assert after.lead.tallies.total_days == 2
    assert after.lead.last_engagement_at == case_study.timestamp  # applied as the scorer applies it
    assert [h.to_stage for h in after.lead.history][: len(before.lead.history)] == [
        h.to_stage for h in before.lead.history
    ]  # history kept, the new step appended


def test_rebuilding_a_lead_that_is_right_changes_nothing_and_tells_nobody(
    stack: LocalStack, normal: StoredLead
) -> None:
    seen = _observed(stack)
    job = _rebuild(stack)

    change = job.lead(normal.lead.lead_id)

    assert not change.changed
    assert job.report.published == []
    assert job.report.queued == []
    assert stack.leads.get(normal.lead.lead_id) == normal  # not even written (same version)
    assert _observed(stack) == seen


def test_a_rebuilt_lead_is_right_the_second_time(stack: LocalStack) -> None:
    stored = _lead_of(stack, "rb-lost")
    seen = _observed(stack)
    job = _rebuild(stack)
    assert not job.lead(stored.lead.lead_id).changed
    assert stack.leads.get(stored.lead.lead_id) == stored
    assert _observed(stack) == seen


def _lower_consideration(to: int) -> Programme:
    text = starter_yaml().replace("consideration: 40", f"consideration: {to}", 1)
    assert text != starter_yaml()
    return load_programme(text, source="proposed.yaml")


def test_a_dry_run_with_a_lower_threshold_shows_the_stage_changes_and_writes_nothing(stack: LocalStack) -> None:
    stack.drain()
    _store(stack, _messages(stack, "rb-dry", "rb-dry-anon")[:2])  # pricing and identify: 30, Awareness
    stack.drain()
    stored = _lead_of(stack, "rb-dry")
    assert stored.lead.stage is Stage.AWARENESS
    seen = _observed(stack)
    job = _rebuild(stack, programme=_lower_consideration(25), dry_run=True)

    change = job.lead(stored.lead.lead_id)

    assert (change.stage_before, change.stage_after) == (Stage.AWARENESS, Stage.CONSIDERATION)
    assert [type(e) for e in job.report.published] == [Transition]  # what would be published
    assert any(
        line.startswith(f"{stored.lead.lead_id}: awareness (intent 30) -> consideration (intent 30)")
        for line in format_report(job.report)
    )
    assert "dry run" in format_report(job.report)[-1]
    assert stack.leads.get(stored.lead.lead_id) == stored
    assert _observed(stack) == seen
    # Applied, the same programme moves it and publishes that one stage change.
    applied = _rebuild(stack, programme=_lower_consideration(25))
    assert applied.lead(stored.lead.lead_id).stage_after is Stage.CONSIDERATION
    assert _lead_of(stack, "rb-dry").lead.stage is Stage.CONSIDERATION
    changes, alerts, emails = _observed(stack)
    assert (changes, alerts, emails) == (seen[0] + 1, seen[1], seen[2])


def test_a_dry_run_of_every_lead_finds_the_leads_lost_records_would_have_made(stack: LocalStack) -> None:
    stack.drain()
    _store(stack, _messages(stack, "rb-all", "rb-all-anon"))
    _lose_stream_records(stack)
    seen = _observed(stack)
    job = _rebuild(stack, dry_run=True)
    progress: list[tuple[int, int]] = []

    report = run(stack.client("dynamodb"), local_target(stack.endpoint), job, None, lambda *p: progress.append(p))

    [made] = job.leads.leads_for(["u#rb-all"]).values()  # in the dry run's overlay only
    [created] = [change for change in report.changes if change.lead_id == made]
    assert created.created
    assert not created.restored
    assert (created.stage_after, created.intent_after) == (Stage.CONSIDERATION, 50)
    assert progress[-1][0] == progress[-1][1] > 0
    assert stack.leads.leads_for(["u#rb-all"]) == {}
    assert _observed(stack) == seen


def test_a_lead_whose_item_was_deleted_is_restored_under_its_id_and_announces_nothing(stack: LocalStack) -> None:
    stack.drain()
    _store(stack, _messages(stack, "rb-deleted", "rb-deleted-anon"))
    stack.drain()
    stored = _lead_of(stack, "rb-deleted")
    lead_id = stored.lead.lead_id
    email = SentRecord(lead_id, Stage.AWARENESS, "awareness-01-why-drips-stall", "Why", stack.now(), "ses-1")
    stack.leads.record_send(email)  # the sender's record of an email it was sent
    stack.client("dynamodb").delete_item(TableName=c.LEADS_TABLE, Key=lead_key(lead_id))
    seen = _observed(stack)

    dry = _rebuild(stack, dry_run=True)
    report = run(stack.client("dynamodb"), local_target(stack.endpoint), dry, None)
    [found] = [change for change in report.changes if change.lead_id == lead_id]
    assert found.restored
    assert found.stage_after is Stage.CONSIDERATION
    assert "restored from its events (nothing published)" in "\n".join(format_report(report))
    assert stack.leads.get(lead_id) is None

    job = _rebuild(stack)
    job.restore(lead_id, stored.profiles)

    after = stack.leads.get(lead_id)
    assert after is not None
    _same_projection(after.lead, stored.lead, stack.now())
    assert [(e.sequence, e.content_id) for e in after.lead.sent] == [(Stage.AWARENESS, "awareness-01-why-drips-stall")]
    assert after.profiles == stored.profiles
    assert job.report.published == [] == job.report.queued
    assert _observed(stack) == seen
    assert not _rebuild(stack).lead(lead_id).changed


def test_the_command_rebuilds_against_a_local_endpoint(
    stack: LocalStack, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    stored = _lead_of(stack, "rb-normal")
    proposed = tmp_path / "proposed.yaml"
    proposed.write_text(starter_yaml().replace("decision: 80", "decision: 45", 1))
    seen = _observed(stack)

    code = main(
        [
            "rebuild",
            "--endpoint-url",
            stack.endpoint,
            "--lead",
            stored.lead.lead_id,
            "--programme",
            str(proposed),
            "--dry-run",
            "--now",
            stack.now().isoformat(),
        ]
    )

    out = capsys.readouterr().out
    assert code == 0
    assert f"{stored.lead.lead_id}: consideration (intent 50) -> decision (intent 50)" in out
    assert "sales alert" in out
    assert stack.leads.get(stored.lead.lead_id) == stored
    assert _observed(stack) == seen


TEMPLATE: dict[str, Any] = {
    "Resources": {
        "StorageEvents1A2B3C4D": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "TableName": "rb-deployed-events",
                "BillingMode": "PAY_PER_REQUEST",
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            },
        },
        "StorageLeads5E6F7A8B": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "TableName": "rb-deployed-leads",
                "BillingMode": "PAY_PER_REQUEST",
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            },
        },
        "BusC0FFEE00": {"Type": "AWS::Events::EventBus", "Properties": {"Name": "rb-deployed-bus"}},
        "DispatchSendQueue9C9C9C9C": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "rb-deployed-send"}},
        "DispatchSendDlq1D1D1D1D": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "rb-deployed-send-dlq"}},
        "ContentBucket2E2E2E2E": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "rb-deployed-content"}},
    },
    "Outputs": {"ContentBucketName": {"Value": {"Ref": "ContentBucket2E2E2E2E"}}},
}


def test_a_deployed_stack_is_found_by_its_cloudformation_resources(stack: LocalStack) -> None:
    cloudformation = stack.client("cloudformation")
    cloudformation.create_stack(StackName="rb-deployed", TemplateBody=json.dumps(TEMPLATE))

    target = stack_target(cloudformation, "rb-deployed", "eu-west-1")

    assert (target.events_table, target.leads_table) == ("rb-deployed-events", "rb-deployed-leads")
    # moto reports no physical id for an event bus (AWS reports its name): the name the app gives its bus stands in.
    assert target.event_bus == c.EVENT_BUS
    assert target.send_queue_url.endswith("/rb-deployed-send")
    assert target.content_bucket == "rb-deployed-content"
    assert target.endpoint_url is None  # the standard credential chain and AWS itself


def test_an_unknown_stack_shape_is_refused(stack: LocalStack) -> None:
    cloudformation = stack.client("cloudformation")
    template = {"Resources": {"Other": TEMPLATE["Resources"]["BusC0FFEE00"] | {"Properties": {"Name": "rb-other"}}}}
    cloudformation.create_stack(StackName="rb-not-nurture", TemplateBody=json.dumps(template))
    with pytest.raises(LookupError, match="events table"):
        stack_target(cloudformation, "rb-not-nurture")
