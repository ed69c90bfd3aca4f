"""The automatic pause of sends: a pause alarm turns sending of the configuration set off and tells operations how to
resume; while sending is off, SES refuses each email and the sender releases it for a retry, never counting it sent."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from types import ModuleType
from typing import Any

import pytest
from botocore.exceptions import ClientError

from nurture import constants as c
from nurture.adapters.ses import SesMailer, SesSendingSwitch
from nurture.domain.programme import Stage
from nurture.pipeline.dispatch import dispatch
from nurture.pipeline.leads import LeadService
from nurture.pipeline.ports import NotSent, SendRequest
from nurture.pipeline.send import Sender
from nurture.pipeline.send_guard import AlarmState, AlarmStateChange, SendGuard, resume_command
from nurture.runtime import wiring
from nurture.tools.local.lambda_events import LocalContext
from tests.fakes import FakeIdempotency, FakeNotifier, FakeQueue, fake_content, fake_ports
from tests.support import ROOT, T0, identify, import_handler, starter

ALARM_EVENT = ROOT / "events" / "lambda" / "alarm-state-change-bounce-pause.json"
RESUME = "aws sesv2 put-configuration-set-sending-options --configuration-set-name nurture --sending-enabled"


@dataclass
class FakeSes:
    """SES v2 as the guard and the mailer call it: a configuration set whose sending can be turned off."""

    sending_enabled: bool = True
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    delivered: list[bytes] = field(default_factory=list)

    def put_configuration_set_sending_options(self, **request: Any) -> dict[str, Any]:
        self.calls.append(("PutConfigurationSetSendingOptions", request))
        self.sending_enabled = bool(request["SendingEnabled"])
        return {}

    def send_email(self, **request: Any) -> dict[str, Any]:
        self.calls.append(("SendEmail", request))
        if not self.sending_enabled:
            # What SES answers for a configuration set whose sending is off (HTTP 400).
            raise ClientError(
                {
                    "Error": {
                        "Code": "SendingPausedException",
                        "Message": "Sending is paused for this configuration set.",
                    }
                },
                "SendEmail",
            )
        self.delivered.append(request["Content"]["Raw"]["Data"])
        return {"MessageId": f"ses-{len(self.delivered)}"}


def _change(state: str, alarm: str = "nurture-ses-bounce-rate-pause") -> AlarmStateChange:
    return AlarmStateChange(alarm_name=alarm, state=AlarmState(value=state, reason="Threshold Crossed: 0.046"))


def _guard(ses: FakeSes, operations: FakeNotifier) -> SendGuard:
    return SendGuard(SesSendingSwitch(ses, c.SES_CONFIGURATION_SET), operations)


# --- the guard -------------------------------------------------------------------------------------------------
def test_a_pause_alarm_turns_sending_of_the_nurture_configuration_set_off() -> None:
    ses, operations = FakeSes(), FakeNotifier()

    guarded = _guard(ses, operations).handle(_change("ALARM"))

    assert guarded.outcome == "paused"
    assert ses.calls == [
        ("PutConfigurationSetSendingOptions", {"ConfigurationSetName": "nurture", "SendingEnabled": False})
    ]
    assert not ses.sending_enabled


def test_operations_hear_which_alarm_paused_sending_and_the_one_command_that_resumes_it() -> None:
    ses, operations = FakeSes(), FakeNotifier()

    _guard(ses, operations).handle(_change("ALARM", alarm="nurture-ses-complaint-rate-pause"))

    [(subject, message)] = operations.published
    assert subject == "nurture: email sending paused by nurture-ses-complaint-rate-pause"
    assert len(subject) <= 100  # SNS's limit
    assert "Threshold Crossed: 0.046" in message
    assert RESUME in message
    assert c.SEND_DLQ in message  # where refused sends wait to be redriven
    assert resume_command(c.SES_CONFIGURATION_SET) == RESUME


@pytest.mark.parametrize("state", ["OK", "INSUFFICIENT_DATA"])
def test_an_alarm_that_clears_changes_nothing_resuming_is_a_person_s_decision(state: str) -> None:
    ses, operations = FakeSes(sending_enabled=False), FakeNotifier()

    guarded = _guard(ses, operations).handle(_change(state))

    assert guarded.outcome == "ignored"
    assert ses.calls == []
    assert not ses.sending_enabled
    assert operations.published == []


def test_when_sending_cannot_be_paused_nobody_is_told_it_was_and_the_event_is_retried() -> None:
    # Given SES throttles the guard's request
    class Throttled(FakeSes):
        def put_configuration_set_sending_options(self, **request: Any) -> dict[str, Any]:
            raise ClientError({"Error": {"Code": "TooManyRequestsException", "Message": "slow down"}}, "Put")

    operations = FakeNotifier()
    # When the alarm fires, then the failure reaches Lambda (EventBridge retries, then the guard's DLQ)
    with pytest.raises(ClientError):
        _guard(Throttled(), operations).handle(_change("ALARM"))
    # And no notice claims sending is paused
    assert operations.published == []


# --- the handler, with the real-shaped EventBridge event --------------------------------------------------------
def _cold_start() -> ModuleType:
    return import_handler("send_guard", "send_guard_handler")


def test_the_handler_pauses_on_the_cloudwatch_alarm_state_change_event(monkeypatch: pytest.MonkeyPatch) -> None:
    ses, operations = FakeSes(), FakeNotifier()
    monkeypatch.setattr(wiring, "send_guard", lambda: _guard(ses, operations))
    event = json.loads(ALARM_EVENT.read_text())

    answer = _cold_start().handler(event, LocalContext("send_guard"))

    assert answer == {"outcome": "paused", "alarm": "nurture-ses-bounce-rate-pause"}
    assert not ses.sending_enabled
    assert len(operations.published) == 1


def test_the_deployed_send_guard_needs_the_operations_topic(monkeypatch: pytest.MonkeyPatch) -> None:
    from nurture.runtime.settings import SettingsError

    monkeypatch.delenv(c.ENV_OPERATIONS_TOPIC_ARN, raising=False)
    with pytest.raises(SettingsError, match=c.ENV_OPERATIONS_TOPIC_ARN):
        wiring.send_guard()


# --- what happens to emails while sending is paused -------------------------------------------------------------
@pytest.fixture
def paused_world() -> tuple[Any, FakeSes, SendRequest]:
    """A lead whose first email is queued, and SES's nurture configuration set paused by the guard."""
    ports = fake_ports()
    ses = FakeSes()
    ports.mailer = SesMailer(ses, "nurture@example.com", c.SES_CONFIGURATION_SET)
    service = LeadService(ports, starter(), new_id=lambda: "lead-1")
    service.receive([identify(T0, message_id="guard-1", first_name="Ada", company="Northwind")], T0)
    dispatch(service, T0)
    queue: FakeQueue = ports.queue  # type: ignore[assignment]
    [request] = queue.queued
    assert request.sequence is Stage.AWARENESS
    _guard(ses, FakeNotifier()).handle(_change("ALARM"))
    return ports, ses, request


def test_an_email_refused_while_sending_is_paused_is_released_not_recorded_as_sent(
    paused_world: tuple[Any, FakeSes, SendRequest],
) -> None:
    ports, ses, request = paused_world
    sender = Sender(FakeIdempotency())

    # When the sender takes the queued email while sending is paused, then SES refused it: NotSent reaches the
    # batch processor, which leaves the message on the queue for a retry (and, after its tries, the send DLQ)
    with pytest.raises(NotSent, match="SendingPausedException"):
        sender.send(request, ports, fake_content(ports), T0)
    assert ses.delivered == []
    assert ports.leads.send_records(request.lead_id) == []


def test_an_email_refused_while_paused_goes_out_once_when_it_is_retried_after_resuming(
    paused_world: tuple[Any, FakeSes, SendRequest],
) -> None:
    ports, ses, request = paused_world
    sender = Sender(FakeIdempotency())
    for attempt in range(c.SEND_MAX_RECEIVE_COUNT):  # every try the queue allows, all while paused
        with pytest.raises(NotSent):
            sender.send(request, ports, fake_content(ports), T0 + timedelta(minutes=3 * attempt))

    # When an operator resumes sending and redrives the send DLQ
    ses.put_configuration_set_sending_options(ConfigurationSetName=c.SES_CONFIGURATION_SET, SendingEnabled=True)
    delivery = sender.send(request, ports, fake_content(ports), T0 + timedelta(days=1))
    again = sender.send(request, ports, fake_content(ports), T0 + timedelta(days=1, minutes=1))

    # Then the email goes out exactly once, and is recorded
    assert (delivery.outcome, again.outcome) == ("sent", "sent")
    assert len(ses.delivered) == 1
    [record] = ports.leads.send_records(request.lead_id)
    assert record.provider_id == "ses-1"
