"""The local stack: moto's server as AWS, the real handlers invoked with real-shaped events.

It plays Lambda's part: it reads the events table's stream and invokes the scorer with batches,
receives from the send queue and invokes the sender, invokes the dispatcher on the five-minute grid,
and taps the event bus (moto cannot invoke Lambda targets) to collect stage changes and alerts.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import message_from_string
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
from moto.server import ThreadedMotoServer
from moto.ses.models import ses_backends

from nurture import constants as c
from nurture.adapters.dynamodb import LeadTable
from nurture.runtime import clock, wiring
from nurture.runtime.clock import ManualClock
from nurture.runtime.observability import logger
from nurture.tools import REPO
from nurture.tools.engine import on_dispatch_grid
from nurture.tools.local import resources
from nurture.tools.local.lambda_events import LocalContext, scheduled_event, sqs_event, stream_event

FUNCTIONS = REPO / "functions"
STREAM_BATCH_SIZE = 100
MAX_STREAM_ATTEMPTS = 5


@dataclass(frozen=True)
class ReceivedEmail:
    """One email as SES received it."""

    message_id: str
    to: tuple[str, ...]
    subject: str


def _received(message: Any) -> ReceivedEmail:
    """moto keeps a Simple email as a `Message` (destinations by kind) and a Raw one as a `RawMessage`."""
    destinations = message.destinations
    if isinstance(destinations, dict):
        to = tuple(destinations.get("ToAddresses", []))
        subject = message.subject
    else:
        to = tuple(destinations)
        subject = message_from_string(message.raw_data).get("Subject", "")
    return ReceivedEmail(message_id=message.id, to=to, subject=subject)


@dataclass
class Captured:
    stage_changes: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)


class LocalStack:
    def __init__(self, content_root: Path, write_key: str, admin_token: str, manual_start: datetime | None) -> None:
        self.content_root = content_root
        self.write_key = write_key
        self.admin_token = admin_token
        self.manual = ManualClock(manual_start) if manual_start is not None else None
        self.captured = Captured()
        self.lock = threading.RLock()  # one handler at a time, as in a single Lambda instance
        self._server: ThreadedMotoServer | None = None
        self._iterators: dict[str, str] = {}
        self._retry: list[tuple[dict[str, Any], int]] = []
        self._handlers: dict[str, ModuleType] = {}
        self._saved_env: dict[str, str | None] = {}
        self._clients: dict[str, Any] = {}
        self._account: str | None = None

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> LocalStack:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self._set_env(
            {
                "AWS_ENDPOINT_URL": self.endpoint,
                "AWS_DEFAULT_REGION": resources.REGION,
                "AWS_REGION": resources.REGION,
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
                "POWERTOOLS_METRICS_DISABLED": "true",
                "POWERTOOLS_TRACE_DISABLED": "true",
                "POWERTOOLS_LOG_LEVEL": os.environ.get("POWERTOOLS_LOG_LEVEL", "WARNING"),
                c.ENV_LOCAL_ADMIN_TOKEN: self.admin_token,
            }
        )
        # The logger may exist already (it is built on import): apply the level here, not only in the env.
        logger.setLevel(os.environ["POWERTOOLS_LOG_LEVEL"])
        wiring.reset()
        env = resources.create(self.client, self.content_root, self.write_key)
        self._set_env(env)
        wiring.reset()
        if self.manual is not None:
            clock.use(self.manual)
        self._handlers = {name: _load_handler(name) for name in c.FUNCTION_DIRS}
        self.stream_arn = self.client("dynamodb").describe_table(TableName=c.EVENTS_TABLE)["Table"]["LatestStreamArn"]
        self.send_queue_url = env[c.ENV_SEND_QUEUE_URL]
        self.send_queue_arn = self.client("sqs").get_queue_attributes(
            QueueUrl=self.send_queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        self.tap_url = self.client("sqs").get_queue_url(QueueName=resources.BUS_TAP_QUEUE)["QueueUrl"]
        return self

    def stop(self) -> None:
        clock.use(clock.SystemClock())
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        wiring.reset()
        if self._server is not None:
            # moto keeps its state in the process, not the server: reset it so that another stack
            # started in this process (mutmut runs pytest many times in one) begins empty.
            reset = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")  # noqa: S310 - loopback
            urllib.request.urlopen(reset).close()  # noqa: S310 - loopback only
            self._server.stop()
            self._server = None

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = boto3.session.Session().client(
                service, endpoint_url=self.endpoint, region_name=resources.REGION
            )
        return self._clients[service]

    @property
    def leads(self) -> LeadTable:
        return LeadTable(self.client("dynamodb"), c.LEADS_TABLE)

    def now(self) -> datetime:
        return clock.now()

    # --- invoking handlers --------------------------------------------------------------------
    def invoke(self, name: str, event: dict[str, Any]) -> Any:
        with self.lock:
            return self._handlers[name].handler(event, LocalContext(function_name=f"nurture-{name}"))

    def drain(self) -> int:
        """Run the stream, the send queue and the bus tap until none has anything left to do."""
        total = 0
        with self.lock:
            while True:
                done = self._pump_stream() + self._pump_queue() + self._pump_bus_tap()
                total += done
                if done == 0:
                    return total

    def tick(self) -> Any:
        """One dispatcher run at the current time, then everything it caused."""
        with self.lock:
            report = self.invoke("dispatcher", scheduled_event(self.now()))
            self.drain()
            return report

    def advance(self, by: timedelta, on_tick: Callable[[datetime], None] | None = None) -> datetime:
        """Move the manual clock forward, running each dispatcher tick at which something is due, in order."""
        if self.manual is None:
            raise RuntimeError("the clock is real: start with --clock manual to move it")
        with self.lock:
            self.drain()
            target = self.manual.now() + by
            while (due := self.next_due()) is not None:
                at = max(on_dispatch_grid(due), on_dispatch_grid(self.manual.now()))
                if at > target:
                    break
                self.manual.set(at)
                self.tick()
                if on_tick is not None:
                    on_tick(at)
                if self.next_due() == due:  # nothing moved it: do not spin on the same lead
                    self.manual.set(at + timedelta(minutes=c.DISPATCH_SCHEDULE_MINUTES))
            self.manual.set(target)
            self.drain()
            return self.manual.now()

    def next_due(self) -> datetime | None:
        leads = self.leads
        times = [t for shard in range(c.DUE_SHARDS) if (t := leads.next_due(shard)) is not None]
        return min(times, default=None)

    # --- what was sent -----------------------------------------------------------------------
    def emails(self) -> list[ReceivedEmail]:
        """Every email moto's SES accepted, in the order it accepted them: what recipients would get.

        Read from moto's SES backend in this process (the server runs in a thread here); SES v2's SendEmail
        is kept by the v1 backend, as `GET {endpoint}/moto-api/data.json` also shows under `ses`.
        """
        if self._account is None:
            self._account = self.client("sts").get_caller_identity()["Account"]
        sent = list(ses_backends[self._account][resources.REGION].sent_messages)
        return [_received(message) for message in sent]

    def outbox(self) -> list[dict[str, Any]]:
        """Every email SES accepted, in order, joined with the send record the sender wrote with SES's message id.

        To and subject are what SES received. moto keeps neither an email's tags nor when it was sent, so the
        lead, sequence, email and time come from the lead's send record whose `provider_id` is the email's
        message id. An email with no such record (one of two copies of an email: the record keeps the last one's
        id; or an email whose record was never written) is still listed, with those fields null: the outbox
        never hides what SES sent.
        """
        with self.lock:  # between handler invocations: an email accepted by SES has its record written
            emails = self.emails()
            records = self._send_records()
        outbox = []
        for mail in emails:
            record = records.get(mail.message_id, {})
            outbox.append(
                {
                    "to": mail.to[0] if mail.to else None,
                    "subject": mail.subject,
                    "sequence": record.get("sequence"),
                    "content_id": record.get("content_id"),
                    "sent_at": record.get("sent_at"),
                    "lead_id": record.get("lead_id"),
                    "message_id": mail.message_id,
                }
            )
        return outbox

    def _send_records(self) -> dict[str, dict[str, str]]:
        """The leads table's send records (`LEAD#<id>`, `SEND#<sequence>#<content_id>`) by SES message id: a scan,
        fine for the local stack, never done by a Lambda."""
        records: dict[str, dict[str, str]] = {}
        scan = self.client("dynamodb").get_paginator("scan")
        for page in scan.paginate(
            TableName=c.LEADS_TABLE,
            FilterExpression="begins_with(#sk, :send)",
            ExpressionAttributeNames={"#sk": c.LEADS_SK},
            ExpressionAttributeValues={":send": {"S": "SEND#"}},
        ):
            for item in page["Items"]:
                _, sequence, content_id = item[c.LEADS_SK]["S"].split("#", 2)
                records[item["provider_id"]["S"]] = {
                    "lead_id": item[c.LEADS_PK]["S"].removeprefix("LEAD#"),
                    "sequence": sequence,
                    "content_id": content_id,
                    "sent_at": datetime.fromisoformat(item["sent_at"]["S"]).isoformat(),
                }
        return records

    # --- pumps --------------------------------------------------------------------------------
    def _pump_stream(self) -> int:
        streams = self.client("dynamodbstreams")
        records: list[dict[str, Any]] = [record for record, _ in self._retry]
        attempts = {r["dynamodb"]["SequenceNumber"]: n for r, n in self._retry}
        self._retry = []
        shards = streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]
        for shard in shards:
            iterator = (
                self._iterators.get(shard["ShardId"])
                or streams.get_shard_iterator(
                    StreamArn=self.stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            )
            answer = streams.get_records(ShardIterator=iterator, Limit=1000)
            self._iterators[shard["ShardId"]] = answer["NextShardIterator"]
            records += answer["Records"]
        for start in range(0, len(records), STREAM_BATCH_SIZE):
            batch = records[start : start + STREAM_BATCH_SIZE]
            response = self.invoke("scorer", stream_event(batch, self.stream_arn))
            failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
            for record in batch:
                number = record["dynamodb"]["SequenceNumber"]
                if number in failed:
                    tries = attempts.get(number, 0) + 1
                    if tries >= MAX_STREAM_ATTEMPTS:
                        self.captured.dead_letters.append(record)  # the scorer DLQ in AWS
                    else:
                        self._retry.append((record, tries))
        return len(records) - len(self._retry)

    def _pump_queue(self) -> int:
        sqs = self.client("sqs")
        handled = 0
        while True:
            messages = sqs.receive_message(
                QueueUrl=self.send_queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
            ).get("Messages", [])
            if not messages:
                return handled
            response = self.invoke("sender", sqs_event(messages, self.send_queue_arn))
            failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
            for message in messages:
                if message["MessageId"] in failed:
                    sqs.change_message_visibility(
                        QueueUrl=self.send_queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                    )
                else:
                    sqs.delete_message(QueueUrl=self.send_queue_url, ReceiptHandle=message["ReceiptHandle"])
                    handled += 1
            if failed:
                return handled  # the redrive policy moves repeat failures to the DLQ

    def _pump_bus_tap(self) -> int:
        sqs = self.client("sqs")
        handled = 0
        while messages := sqs.receive_message(QueueUrl=self.tap_url, MaxNumberOfMessages=10).get("Messages", []):
            for message in messages:
                event = json.loads(message["Body"])
                target = self.captured.alerts if event["detail-type"] == "Sales Alert" else self.captured.stage_changes
                target.append(event["detail"])
                sqs.delete_message(QueueUrl=self.tap_url, ReceiptHandle=message["ReceiptHandle"])
                handled += 1
        return handled

    def _set_env(self, values: dict[str, str]) -> None:
        for name, value in values.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value


def _load_handler(name: str) -> ModuleType:
    """Import functions/<n_name>/handler.py as its own module, as Lambda would."""
    spec = importlib.util.spec_from_file_location(
        f"nurture_function_{name}", FUNCTIONS / c.FUNCTION_DIRS[name] / "handler.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
