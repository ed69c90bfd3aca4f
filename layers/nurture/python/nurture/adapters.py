"""Adapters from the ports to S3, SES v2, EventBridge and SQS. Each takes its boto3 client, so tests inject."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError

from nurture.constants import EVENT_SOURCE, STAGE_CHANGED_DETAIL_TYPE
from nurture.journey import Effect, SalesAlert, Transition
from nurture.ports import SendRequest

SALES_ALERT_DETAIL_TYPE = "Sales Alert"


def effect_detail(effect: Effect) -> tuple[str, dict[str, Any]]:
    """The bus event for an effect. No personal data: consumers read the lead by id."""
    if isinstance(effect, Transition):
        return STAGE_CHANGED_DETAIL_TYPE, {
            "lead_id": effect.lead_id,
            "from": effect.from_stage,
            "to": effect.to_stage,
            "reason": effect.reason,
            "at": effect.at.isoformat(),
            "programme": effect.programme,
        }
    if isinstance(effect, SalesAlert):
        return SALES_ALERT_DETAIL_TYPE, {
            "lead_id": effect.lead_id,
            "reason": effect.reason,
            "at": effect.at.isoformat(),
            "stage": effect.stage,
            "intent": effect.intent,
            "fit": effect.fit,
            "missing": list(effect.missing),
        }
    raise TypeError(f"{effect.kind} effects go to the send queue, not the bus")


class EventBridgeBus:
    def __init__(self, client: Any, bus_name: str) -> None:
        self.client = client
        self.bus_name = bus_name

    def publish(self, effects: Sequence[Effect]) -> None:
        entries = []
        for effect in effects:
            detail_type, detail = effect_detail(effect)
            entries.append(
                {
                    "Source": EVENT_SOURCE,
                    "DetailType": detail_type,
                    "Detail": json.dumps(detail),
                    "EventBusName": self.bus_name,
                }
            )
        for start in range(0, len(entries), 10):
            answer = self.client.put_events(Entries=entries[start : start + 10])
            if answer.get("FailedEntryCount"):
                raise RuntimeError(f"EventBridge rejected {answer['FailedEntryCount']} events")


class SqsSendQueue:
    def __init__(self, client: Any, queue_url: str) -> None:
        self.client = client
        self.queue_url = queue_url

    def enqueue(self, requests: Sequence[SendRequest]) -> None:
        for start in range(0, len(requests), 10):
            batch = requests[start : start + 10]
            answer = self.client.send_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "MessageBody": request.model_dump_json()} for i, request in enumerate(batch)],
            )
            if answer.get("Failed"):
                raise RuntimeError(f"SQS rejected {len(answer['Failed'])} send requests")


class SesMailer:
    def __init__(self, client: Any, from_address: str, configuration_set: str) -> None:
        self.client = client
        self.from_address = from_address
        self.configuration_set = configuration_set

    def send(self, to: str, subject: str, text: str, html: str, tags: dict[str, str]) -> str:
        answer = self.client.send_email(
            FromEmailAddress=self.from_address,
            Destination={"ToAddresses": [to]},
            Content={
                "Simple": {
                    "Subject": {"Data": subject, "Charset": "UTF-8"},
                    "Body": {"Text": {"Data": text, "Charset": "UTF-8"}, "Html": {"Data": html, "Charset": "UTF-8"}},
                }
            },
            ConfigurationSetName=self.configuration_set,
            EmailTags=[{"Name": name, "Value": value} for name, value in tags.items()],
        )
        message_id: str = answer["MessageId"]
        return message_id


class S3Content:
    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def read(self, key: str, etag: str | None = None) -> tuple[str, str] | None:
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if etag:
            request["IfNoneMatch"] = etag
        try:
            answer = self.client.get_object(**request)
        except ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 304 or error.response.get("Error", {}).get("Code") == "304":
                return None
            raise
        return answer["Body"].read().decode("utf-8"), answer["ETag"]
