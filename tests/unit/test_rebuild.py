"""The rebuild's rules on in-memory ports: what it keeps, what it publishes, and how a deployed stack is found."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from nurture.domain.journey import SalesAlert, Send, Transition
from nurture.domain.messages import Message
from nurture.domain.programme import Programme, Stage, load_programme
from nurture.pipeline.leads import LeadService
from nurture.pipeline.ports import Ports, StoredEvent
from nurture.tools.rebuild import (
    LOCAL_STATE_ENV,
    Rebuild,
    format_report,
    local_target,
    remove_local_state,
    reproject,
    stack_target,
    write_local_state,
)
from tests.fakes import FakeBus, FakeEvents, FakeLeads, FakeQueue, fake_ports
from tests.support import T0, days, identify, page, starter, starter_yaml, track


def _with(**thresholds: int) -> Programme:
    text = starter_yaml()
    for name, value in thresholds.items():
        default = {"consideration": 40, "decision": 80}[name]
        text = text.replace(f"{name}: {default}", f"{name}: {value}", 1)
    return load_programme(text, source="proposed.yaml")


def _receive(ports: Ports, service: LeadService, messages: list[Message], now: datetime) -> str:
    for message in messages:
        ports.events.put(StoredEvent(profile_id=message.profile_ids[0], message=message, received_at=now))
    return service.receive(messages, now)


def _rebuild(ports: Ports, programme: Programme, now: datetime, dry_run: bool = False) -> Rebuild:
    return Rebuild(
        ports.events, ports.leads, ports.bus, ports.queue, programme, current=starter(), now=now, dry_run=dry_run
    )


@pytest.fixture
def ada() -> tuple[Ports, str]:
    """Ada read pricing (30), identified herself and was sent her first Awareness email."""
    ports = fake_ports()
    service = LeadService(ports, starter())
    lead_id = _receive(
        ports,
        service,
        [page("/pricing", user=None, anonymous="a-ada"), identify(user="u-ada", anonymous="a-ada", seniority="vp")],
        T0,
    )
    service.tick(lead_id, T0)
    assert isinstance(ports.queue, FakeQueue)
    assert [r.content_id for r in ports.queue.queued] == ["awareness-01-why-drips-stall"]
    return ports, lead_id


def test_a_lower_threshold_moves_the_lead_and_keeps_what_it_was_sent_and_its_history(ada: tuple[Ports, str]) -> None:
    ports, lead_id = ada
    before = ports.leads.get(lead_id)
    assert before is not None
    assert isinstance(ports.bus, FakeBus)
    assert isinstance(ports.queue, FakeQueue)
    published, queued = len(ports.bus.published), len(ports.queue.queued)
    now = T0 + days(1)

    change = _rebuild(ports, _with(consideration=25), now).lead(lead_id)

    after = ports.leads.get(lead_id)
    assert after is not None
    assert (change.stage_before, change.stage_after) == (Stage.AWARENESS, Stage.CONSIDERATION)
    assert after.lead.sent == before.lead.sent  # the Awareness email stays sent
    assert after.lead.history[:-1] == before.lead.history
    assert after.lead.history[-1].to_stage is Stage.CONSIDERATION
    new = ports.bus.published[published:]
    assert [type(e) for e in new] == [Transition]
    assert ports.queue.queued[queued:] == []  # a rebuild decides no email: the dispatcher sends on schedule
    assert after.lead.next_send_at is not None
    assert after.due_at is not None


def test_a_lead_that_is_right_is_not_written_and_publishes_nothing(ada: tuple[Ports, str]) -> None:
    ports, lead_id = ada
    assert isinstance(ports.leads, FakeLeads)
    before, writes = ports.leads.get(lead_id), ports.leads.writes

    job = _rebuild(ports, starter(), T0 + days(1))
    change = job.lead(lead_id)

    assert not change.changed
    assert ports.leads.writes == writes
    assert ports.leads.get(lead_id) == before
    assert job.report.published == [] == job.report.queued


def test_a_dry_run_reports_the_change_and_its_alert_without_writing(ada: tuple[Ports, str]) -> None:
    ports, lead_id = ada
    assert isinstance(ports.leads, FakeLeads)
    assert isinstance(ports.bus, FakeBus)
    writes, published = ports.leads.writes, len(ports.bus.published)

    job = _rebuild(ports, _with(consideration=20, decision=30), T0 + days(1), dry_run=True)
    change = job.lead(lead_id)

    assert (change.stage_before, change.stage_after) == (Stage.AWARENESS, Stage.DECISION)
    assert [type(e) for e in job.report.published] == [Transition, SalesAlert]
    assert ports.leads.writes == writes
    assert len(ports.bus.published) == published
    [line, total] = format_report(job.report)
    assert line.startswith(f"{lead_id}: awareness (intent 30) -> decision (intent 30)  [stage change awareness")
    assert "sales alert" in line
    assert total == "1 leads rebuilt, 1 would change (dry run: nothing written)"


def test_events_the_lead_never_applied_are_caught_up_as_the_scorer_would(ada: tuple[Ports, str]) -> None:
    ports, lead_id = ada
    demo = track("Demo Requested", at=T0 + days(2), user="u-ada")
    ports.events.put(StoredEvent(profile_id="u#u-ada", message=demo, received_at=T0 + days(2)))  # its record was lost

    job = _rebuild(ports, starter(), T0 + days(3))
    change = job.lead(lead_id)

    assert change.stage_after is Stage.DECISION
    assert [type(e) for e in job.report.published] == [Transition, SalesAlert]  # the first the lead hears of it
    again = _rebuild(ports, starter(), T0 + days(3))
    assert not again.lead(lead_id).changed
    assert again.report.published == []


def test_a_lost_opt_out_is_caught_up_and_stops_nurture(ada: tuple[Ports, str]) -> None:
    ports, lead_id = ada
    unsubscribed = track("Unsubscribed", at=T0 + days(1), user="u-ada")
    ports.events.put(StoredEvent(profile_id="u#u-ada", message=unsubscribed, received_at=T0 + days(1)))

    change = _rebuild(ports, starter(), T0 + days(2)).lead(lead_id)

    assert (change.stage_before, change.stage_after) == (Stage.AWARENESS, Stage.OPTED_OUT)
    stored = ports.leads.get(lead_id)
    assert stored is not None
    assert stored.due_at is None  # nothing more to send


def test_reprojection_recomputes_signals_under_the_programme_and_never_sends() -> None:
    events = [
        StoredEvent(profile_id="u#u-1", message=m, received_at=T0)
        for m in (identify(), page("/blog/a", message_id="b1"), page("/pricing", message_id="p1"))
    ]
    ports = fake_ports()
    service = LeadService(ports, starter())
    for event in events:
        ports.events.put(event)
    lead_id = service.receive([e.message for e in events], T0)
    stored = ports.leads.get(lead_id)
    assert stored is not None
    cheaper_blog = load_programme(starter_yaml().replace("points: 5", "points: 15", 1), source="p.yaml")

    lead, effects = reproject(stored.lead, events, cheaper_blog, T0)

    assert lead.intent(cheaper_blog, T0) == 45
    assert lead.stage is Stage.CONSIDERATION
    assert not any(isinstance(e, Send) for e in effects)
    assert reproject(stored.lead, events, starter(), T0) == (stored.lead, [])


def test_every_lead_includes_profiles_no_lead_is_linked_to() -> None:
    ports = fake_ports()
    for message in (page("/pricing", user="u-new"), identify(user="u-new")):
        ports.events.put(StoredEvent(profile_id="u#u-new", message=message, received_at=T0))
    assert isinstance(ports.events, FakeEvents)

    job = _rebuild(ports, starter(), T0, dry_run=True)
    [change] = job.unlinked(list(ports.events.items.values()))

    assert change.created
    assert (change.stage_after, change.intent_after) == (Stage.AWARENESS, 30)
    assert ports.leads.leads_for(["u#u-new"]) == {}


class _CloudFormation:
    """describe_stack_resources and describe_stacks as AWS answers them for the CDK app's stack."""

    def __init__(self, resources: list[tuple[str, str, str]]) -> None:
        self.resources = resources

    def describe_stack_resources(self, StackName: str) -> dict[str, Any]:
        return {
            "StackResources": [
                {"LogicalResourceId": logical, "ResourceType": kind, "PhysicalResourceId": physical}
                for logical, kind, physical in self.resources
            ]
        }

    def describe_stacks(self, StackName: str) -> dict[str, Any]:
        return {"Stacks": [{"Outputs": [{"OutputKey": "ContentBucketName", "OutputValue": "nurture-content-abc"}]}]}


def test_a_deployed_stack_is_read_from_its_physical_resource_ids() -> None:
    cloudformation = _CloudFormation(
        [
            ("StorageEvents5C3B1D7A", "AWS::DynamoDB::Table", "nurture-events"),
            ("StorageLeadsA1B2C3D4", "AWS::DynamoDB::Table", "nurture-leads"),
            ("StorageIdempotency0F0F0F0F", "AWS::DynamoDB::Table", "nurture-idempotency"),
            ("Bus8A8A8A8A", "AWS::Events::EventBus", "nurture"),
            ("DispatchSendQueue1B1B1B1B", "AWS::SQS::Queue", "https://sqs.eu-west-1.amazonaws.com/1/nurture-send"),
            ("DispatchSendDlq2C2C2C2C", "AWS::SQS::Queue", "https://sqs.eu-west-1.amazonaws.com/1/nurture-send-dlq"),
        ]
    )
    target = stack_target(cloudformation, "Nurture")
    assert (target.events_table, target.leads_table, target.event_bus) == ("nurture-events", "nurture-leads", "nurture")
    assert target.send_queue_url == "https://sqs.eu-west-1.amazonaws.com/1/nurture-send"
    assert target.content_bucket == "nurture-content-abc"


def test_the_running_local_stack_is_found_by_the_file_it_writes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    state = tmp_path / "local.json"
    monkeypatch.setenv(LOCAL_STATE_ENV, str(state))
    with pytest.raises(LookupError, match="no running `nurture local`"):
        local_target()
    write_local_state("http://127.0.0.1:8080", "http://127.0.0.1:5123", "eu-west-1")

    target = local_target()

    assert (target.endpoint_url, target.local_url, target.region) == (
        "http://127.0.0.1:5123",
        "http://127.0.0.1:8080",
        "eu-west-1",
    )
    assert json.loads(state.read_text())["url"] == "http://127.0.0.1:8080"
    remove_local_state()
    assert not state.exists()


def test_the_progress_bar_is_a_tool_dependency_never_a_runtime_one() -> None:
    import tomllib

    from tests.support import ROOT

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.startswith("rich")]
    assert "rich==15.0.0" in project["optional-dependencies"]["tools"]
