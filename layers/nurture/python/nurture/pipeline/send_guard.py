"""The automatic pause of nurture sends: when an SES reputation alarm reaches its pause level, turn sending of the
configuration set off, before AWS reviews or suspends the account, and tell operations how to resume.

Resuming is an operator's decision, made by hand once the cause is found (docs/operations.md): nothing here turns
sending back on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from nurture.constants import SEND_DLQ
from nurture.pipeline.ports import Notifier
from nurture.runtime.observability import logger

ALARM = "ALARM"
SUBJECT_LIMIT = 100  # SNS refuses a longer subject


class SendingSwitch(Protocol):
    """Sending of the nurture configuration set (SES)."""

    configuration_set: str

    def pause(self) -> None:
        """Turn sending off; emails sent through the configuration set are refused until it is turned back on."""


class AlarmState(BaseModel):
    model_config = ConfigDict(extra="ignore")

    value: str
    reason: str = ""


class AlarmStateChange(BaseModel):
    """The `detail` of EventBridge's "CloudWatch Alarm State Change" event."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    alarm_name: str = Field(alias="alarmName")
    state: AlarmState


@dataclass(frozen=True)
class Guarded:
    outcome: Literal["paused", "ignored"]
    alarm: str


def resume_command(configuration_set: str) -> str:
    """The one command that turns nurture sending back on (docs/operations.md)."""
    return (
        "aws sesv2 put-configuration-set-sending-options "
        f"--configuration-set-name {configuration_set} --sending-enabled"
    )


class SendGuard:
    def __init__(self, switch: SendingSwitch, operations: Notifier) -> None:
        self.switch = switch
        self.operations = operations

    def handle(self, change: AlarmStateChange) -> Guarded:
        """Pause sending when a pause alarm goes into ALARM (the rule passes only those); any other state changes
        nothing. Pausing is idempotent, so a retried event pauses again and repeats the notice, nothing worse."""
        if change.state.value != ALARM:
            return Guarded(outcome="ignored", alarm=change.alarm_name)
        self.switch.pause()
        logger.warning("nurture sending paused", extra={"alarm": change.alarm_name})
        self.operations.publish(
            f"nurture: email sending paused by {change.alarm_name}"[:SUBJECT_LIMIT],
            self._notice(change),
        )
        return Guarded(outcome="paused", alarm=change.alarm_name)

    def _notice(self, change: AlarmStateChange) -> str:
        configuration_set = self.switch.configuration_set
        return (
            f"The alarm {change.alarm_name} reached its pause level, so sending of the SES configuration set "
            f"{configuration_set} is now off: no nurture email goes out, before AWS reviews or suspends the "
            f"account.\n\n{change.state.reason}\n\n"
            "An email refused while paused is not recorded as sent: it is retried, then kept in the send "
            f"dead-letter queue ({SEND_DLQ}) for up to 14 days from when it was queued, to be redriven after "
            "resuming. Leads, scores and sales alerts go on as usual.\n\n"
            "Find the cause first (a bad list or import, a broken form, an email people report as spam), then resume "
            f"by hand:\n\n    {resume_command(configuration_set)}\n\n"
            'and redrive the send dead-letter queue. docs/operations.md, "Sending paused", has every step.'
        )
