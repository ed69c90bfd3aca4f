"""The send queue port on SQS: the dispatcher's send requests, ten to a request."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nurture.pipeline.ports import SendRequest


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
