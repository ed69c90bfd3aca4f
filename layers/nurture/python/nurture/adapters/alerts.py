"""Sales alert channels on AWS: the sales SNS topic, and `Lead Qualified` on the bus for CRM connectors."""

from __future__ import annotations

import json
import unicodedata
from typing import Any

from nurture.constants import EVENT_SOURCE, LEAD_QUALIFIED_DETAIL_TYPE
from nurture.domain.handoff import Alert, alert_text

SUBJECT_LIMIT = 99  # SNS: under 100 ASCII characters, no line breaks


def _subject(alert: Alert) -> str:
    """`Sales alert: Ada Lovelace (Analytical Engines), fit A`, in ASCII (SNS accepts nothing else)."""
    text = f"Sales alert: {alert.name} ({alert.company}), fit {alert.fit_grade}"
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return " ".join(ascii_text.split())[:SUBJECT_LIMIT]


class SnsAlertChannel:
    """The sales topic: e-mail subscribers read the alert as text; SQS, Lambda and HTTP subscribers get it as JSON."""

    name = "sns"

    def __init__(self, client: Any, topic_arn: str) -> None:
        self.client = client
        self.topic_arn = topic_arn

    def deliver(self, alert: Alert) -> None:
        text = alert_text(alert)
        document = alert.model_dump_json()
        self.client.publish(
            TopicArn=self.topic_arn,
            Subject=_subject(alert),
            MessageStructure="json",
            Message=json.dumps(
                {
                    "default": text,
                    "email": text,
                    "sqs": document,
                    "lambda": document,
                    "http": document,
                    "https": document,
                }
            ),
            MessageAttributes={"effect_id": {"DataType": "String", "StringValue": alert.effect_id}},
        )


class LeadQualifiedChannel:
    """`Lead Qualified` on the bus once the lead has an owner, for CRM connectors. No personal data: a connector
    reads the lead by id (`GET /v1/leads/{lead_id}`)."""

    name = "bus"

    def __init__(self, client: Any, bus_name: str) -> None:
        self.client = client
        self.bus_name = bus_name

    def deliver(self, alert: Alert) -> None:
        detail = {
            "effect_id": alert.effect_id,
            "lead_id": alert.lead_id,
            "reason": alert.reason,
            "at": alert.at.isoformat(),
            "stage": alert.stage,
            "intent": alert.intent,
            "fit": alert.fit,
            "fit_grade": alert.fit_grade,
            "owner": alert.owner,
            "owner_email": alert.owner_email,
            "link": alert.link,
        }
        answer = self.client.put_events(
            Entries=[
                {
                    "Source": EVENT_SOURCE,
                    "DetailType": LEAD_QUALIFIED_DETAIL_TYPE,
                    "Detail": json.dumps(detail),
                    "EventBusName": self.bus_name,
                }
            ]
        )
        if answer.get("FailedEntryCount"):
            raise RuntimeError(f"EventBridge rejected the {LEAD_QUALIFIED_DETAIL_TYPE} event")
