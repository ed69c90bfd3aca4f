"""The local stack: moto's server as AWS, the real handlers invoked with real-shaped events.

It plays Lambda's part: it reads the events table's stream and invokes the scorer with batches,
receives from the send queue and invokes the sender, invokes the dispatcher on the five-minute grid,
and taps the event bus (moto cannot invoke Lambda targets) to collect stage changes and alerts.
Failures are handled as the deployed event source mappings handle them (retries, bisection, dead-letter
queues), with the numbers in `nurture.constants` that the CDK app deploys.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_string, policy
from email.message import EmailMessage
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
from moto.server import ThreadedMotoServer
from moto.ses.models import ses_backends
from moto.sqs.models import sqs_backends

from nurture import constants as c
from nurture.adapters.dynamodb import LeadTable
from nurture.domain.email_feedback import DETAIL_TYPES, RECORD_SOURCE
from nurture.runtime import clock, wiring
from nurture.runtime.clock import ManualClock
from nurture.runtime.observability import logger
from nurture.tools import REPO
from nurture.tools.engine import on_dispatch_grid
from nurture.tools.local import resources
from nurture.tools.local.lambda_events import LocalContext, scheduled_event, sqs_event, stream_event

FUNCTIONS = REPO / "functions"


@dataclass(frozen=True)
class ReceivedEmail:
    """One email as SES received it."""

    message_id: str
    to: tuple[str, ...]
    subject: str
    headers: dict[str, str] = field(default_factory=dict)  # the top-level MIME headers (a raw email only)
    html: str | None = None


def _received(message: Any) -> ReceivedEmail:
    """moto keeps a Simple email as a `Message` (destinations by kind) and a Raw one as a `RawMessage`."""
    destinations = message.destinations
    if isinstance(destinations, dict):
        to = tuple(destinations.get("ToAddresses", []))
        return ReceivedEmail(message_id=message.id, to=to, subject=message.subject, html=message.body)
    parsed = message_from_string(message.raw_data, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    body = parsed.get_body(preferencelist=("html",))
    return ReceivedEmail(
        message_id=message.id,
        to=tuple(destinations),
        subject=str(parsed.get("Subject", "")),
        headers={name: str(value) for name, value in parsed.items()},
        html=body.get_content() if isinstance(body, EmailMessage) else None,
    )


@dataclass
class Captured:
    """What the local stack saw leave the engine: on the bus, on the topics, and in the dead-letter queues."""

    stage_changes: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)  # `Sales Alert` bus events (no personal data)
    qualified: list[dict[str, Any]] = field(default_factory=list)  # `Lead Qualified` bus events, for CRM connectors
    # What the scorer's event source mapping discarded to the scorer DLQ and the send queue's redrive policy moved
    # to the send DLQ, in the order they were given up on: see `LocalStack.dead_letters`.
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    # What the operations topic received from the content check: each rejected upload, with why and how to fix it.
    content_rejections: list[dict[str, Any]] = field(default_factory=list)
    # What the sales topic delivered (the alerts function's message, as an SQS subscriber gets it): with values.
    sales_alerts: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Outcome:
    """One invocation of a batch handler, as Lambda's poller sees it: the items that failed, each with its error.

    `function_error` is set when the invocation itself failed (it raised: powertools raises BatchProcessingError when
    every record failed; a crash or a timeout does the same), which fails every item of the batch.
    """

    failed: dict[str, str]
    function_error: str | None = None


@dataclass(frozen=True)
class QueuePoller:
    """What Lambda's SQS event source mapping knows of one queue: the function, the batch size and the DLQ that the
    queue's redrive policy moves messages to."""

    function: str
    url: str
    arn: str
    batch_size: int
    dlq: str


@dataclass(frozen=True)
class _StreamBatch:
    """Records of one shard handed to the scorer together, with the retries they used and how often they were sent."""

    records: list[dict[str, Any]]
    retries: int = 0
    invocations: int = 0


class LocalStack:
    def __init__(
        self,
        content_root: Path,
        write_key: str,
        admin_token: str,
        manual_start: datetime | None,
        slack_webhook: str = "",
    ) -> None:
        self.content_root = content_root
        self.slack_webhook = slack_webhook  # where sales alerts are posted as Slack messages (empty: Slack is off)
        self.write_key = write_key
        self.admin_token = admin_token
        self.manual = ManualClock(manual_start) if manual_start is not None else None
        self.captured = Captured()
        self.lock = threading.RLock()  # one handler at a time, as in a single Lambda instance
        self._server: ThreadedMotoServer | None = None
        self._iterators: dict[str, str] = {}
        self._send_errors: dict[str, str] = {}  # the sender's last error for each failed send message
        self._dead_sends: set[str] = set()  # send messages found in the send DLQ
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
        env = resources.create(self.client, self.content_root, self.write_key, self.slack_webhook)
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
        self.scorer_dlq_url = self.client("sqs").get_queue_url(QueueName=c.SCORER_DLQ)["QueueUrl"]
        self.content_events_url = self.client("sqs").get_queue_url(QueueName=resources.CONTENT_EVENTS_QUEUE)["QueueUrl"]
        self.operations_tap_url = self.client("sqs").get_queue_url(QueueName=resources.OPERATIONS_TAP_QUEUE)["QueueUrl"]
        self.alerts_queue_url = self.client("sqs").get_queue_url(QueueName=c.ALERTS_QUEUE)["QueueUrl"]
        self.alerts_queue_arn = self.client("sqs").get_queue_attributes(
            QueueUrl=self.alerts_queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        self.alerts_tap_url = self.client("sqs").get_queue_url(QueueName=resources.ALERTS_TAP_QUEUE)["QueueUrl"]
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

    def serve_at(self, url: str) -> None:
        """Point the links in emails (unsubscribe) at `url`, where `nurture local`'s HTTP server listens: the port
        is known only once the server is bound, after the stack started."""
        with self.lock:
            self._set_env({c.ENV_PUBLIC_URL: url})
            wiring.reset()

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
                done = (
                    self._pump_content_events()
                    + self._pump_stream()
                    + self._pump_queue()
                    + self._pump_alerts()
                    + self._pump_email_events()
                    + self._pump_bus_tap()
                )
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
        sent = list(ses_backends[self._account_id()][resources.REGION].sent_messages)
        return [_received(message) for message in sent]

    def outbox(self) -> list[dict[str, Any]]:
        """Every email SES accepted, in order, joined with the send record the sender wrote with SES's message id.

        To, subject and headers (List-Unsubscribe...) are what SES received. moto keeps neither an email's tags nor
        when it was sent, so the lead, sequence, email, time and subject variant come from the lead's send record
        whose `provider_id` is the email's message id. An email with no such record (one of two copies of an email:
        the record keeps the last one's id; or an email whose record was never written) is still listed, with those
        fields null: the outbox never hides what SES sent.
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
                    "variant": record.get("variant"),
                    "sequence": record.get("sequence"),
                    "content_id": record.get("content_id"),
                    "sent_at": record.get("sent_at"),
                    "lead_id": record.get("lead_id"),
                    "message_id": mail.message_id,
                    "headers": mail.headers,
                }
            )
        return outbox

    def email_html(self, index: int) -> str | None:
        """The HTML part of the `index`-th email SES accepted (as in `outbox`); None when there is no such email."""
        with self.lock:
            emails = self.emails()
        return emails[index].html if 0 <= index < len(emails) else None

    def metrics(self) -> dict[str, dict[str, float]]:
        """Every month's counters (`nurture.domain.metrics`), as `nurture report` reads them: a scan of the leads
        table's `METRICS#` items, fine locally (a deployed report queries one month at a time)."""
        from nurture.adapters.metrics import MetricsTable

        with self.lock:
            table = MetricsTable(self.client("dynamodb"), c.LEADS_TABLE)
            scan = self.client("dynamodb").get_paginator("scan")
            months = sorted(
                {
                    item[c.LEADS_PK]["S"].removeprefix(c.METRICS_PK_PREFIX)
                    for page in scan.paginate(
                        TableName=c.LEADS_TABLE,
                        FilterExpression="begins_with(#pk, :metrics)",
                        ExpressionAttributeNames={"#pk": c.LEADS_PK},
                        ExpressionAttributeValues={":metrics": {"S": c.METRICS_PK_PREFIX}},
                        ProjectionExpression="#pk",
                    )
                    for item in page["Items"]
                }
            )
            return {month: table.month(month) for month in months}

    def _send_records(self) -> dict[str, dict[str, Any]]:
        """The leads table's send records (`LEAD#<id>`, `SEND#<sequence>#<content_id>`) by SES message id: a scan,
        fine for the local stack, never done by a Lambda."""
        records: dict[str, dict[str, Any]] = {}
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
                    # The subject variant (A/B) the lead got; 0 for records written before variants existed.
                    "variant": int(next(iter(item["variant"].values()))) if "variant" in item else 0,
                }
        return records

    # --- content, as marketers change it ----------------------------------------------------------
    def upload_content(self, relative: str, text: str | bytes | None) -> list[dict[str, Any]]:
        """Put (or, with None, delete) a file under the content bucket's `incoming/` prefix, as a marketer would, and
        run what its S3 event triggers: the content check. Returns the rejections the operations topic received.
        Bytes are uploaded as they are (a file that is not UTF-8 text is the check's to refuse)."""
        with self.lock:
            seen = len(self.captured.content_rejections)
            key = c.CONTENT_INCOMING_PREFIX + relative
            s3 = self.client("s3")
            if text is None:
                s3.delete_object(Bucket=resources.CONTENT_BUCKET, Key=key)
            else:
                body = text.encode("utf-8") if isinstance(text, str) else text
                s3.put_object(Bucket=resources.CONTENT_BUCKET, Key=key, Body=body)
            self.drain()
            return self.captured.content_rejections[seen:]

    def content_rejections(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.captured.content_rejections)

    def watch_content(self, root: Path, report: Callable[[str], None], interval: float = 1.0) -> threading.Event:
        """Upload each file saved under `root` (programme.yaml, emails/*.md) to `incoming/`, so the content check
        publishes it or rejects it, and `report` what happened. Set the returned event to stop watching.

        Each file is handled on its own, once per change: a file that cannot be read is named and tried again at the
        next change, and never holds back the others; a file that is not UTF-8 text is uploaded as it is, for the
        check to refuse it (`encoding`) like any other bad file."""
        stop = threading.Event()

        def snapshot() -> dict[str, int]:
            files = [root / c.CONTENT_PROGRAMME_KEY, *sorted((root / "emails").glob("*.md"))]
            found: dict[str, int] = {}
            for path in files:
                try:
                    found[path.relative_to(root).as_posix()] = path.stat().st_mtime_ns
                except OSError:
                    continue  # gone between the listing and the look: a deletion
            return found

        def handle(relative: str, exists: bool) -> None:
            data = (root / relative).read_bytes() if exists else None
            was_live = self._content_live(relative)
            rejections = self.upload_content(relative, data)
            if rejections:
                report(f"content: {relative} {'removed; refused' if data is None else 'saved; rejected'}")
                for rejection in rejections:
                    report(rejection["message"])
            elif data is not None:
                report(f"content: {relative} saved; checked and live")
            elif was_live:
                report(f"content: {relative} removed; checked and removed from the live content")
            else:
                report(f"content: {relative} removed; it was never live, so nothing changed")

        def watch() -> None:
            try:
                seen = snapshot()
            except OSError as error:
                report(f"content: could not read {root}: {error}")
                seen = {}
            while not stop.wait(interval):
                try:
                    now = snapshot()
                except OSError as error:  # the folder itself: try again at the next poll
                    report(f"content: could not read {root}: {error}")
                    continue
                for relative in sorted(set(seen) | set(now)):
                    if seen.get(relative) == now.get(relative):
                        continue
                    try:
                        handle(relative, relative in now)
                    except OSError as error:  # half-written, or gone: named, and tried again at its next change
                        report(f"content: could not read {root / relative}: {error.strerror or error}")
                    if relative in now:
                        seen[relative] = now[relative]
                    else:
                        seen.pop(relative, None)

        threading.Thread(target=watch, name="nurture-content-watch", daemon=True).start()
        return stop

    def _content_live(self, relative: str) -> bool:
        """Whether the content bucket has a live `relative` (programme.yaml, emails/...)."""
        with self.lock:
            found = self.client("s3").list_objects_v2(Bucket=resources.CONTENT_BUCKET, Prefix=relative)
            return any(item["Key"] == relative for item in found.get("Contents", []))

    def _pump_content_events(self) -> int:
        """Invoke the content check with each S3 event of the bucket's `incoming/` prefix, as the EventBridge rule does
        in AWS (moto delivers the bucket's EventBridge events to the rule's queue target instead)."""
        sqs = self.client("sqs")
        handled = 0
        while messages := sqs.receive_message(QueueUrl=self.content_events_url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            for message in messages:
                try:  # the S3 event as EventBridge delivers it to the function
                    self.invoke("content_check", json.loads(message["Body"]))
                except Exception as error:
                    logger.warning("local stack: the content check failed: %s", _describe(error))
                sqs.delete_message(QueueUrl=self.content_events_url, ReceiptHandle=message["ReceiptHandle"])
                handled += 1
        if handled:
            wiring.content().refresh()  # deployed functions see a published change within CachedContent's re-check
        return handled + self._pump_operations()

    def _pump_operations(self) -> int:
        sqs = self.client("sqs")
        handled = 0
        while messages := sqs.receive_message(QueueUrl=self.operations_tap_url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            for message in messages:
                envelope = json.loads(message["Body"])  # SNS's notification, as an SQS subscriber gets it
                self.captured.content_rejections.append(
                    {"subject": envelope.get("Subject"), "message": envelope["Message"], "at": self.now().isoformat()}
                )
                sqs.delete_message(QueueUrl=self.operations_tap_url, ReceiptHandle=message["ReceiptHandle"])
                handled += 1
        return handled

    # --- what failed -------------------------------------------------------------------------
    def dead_letters(self) -> list[dict[str, Any]]:
        """Everything given up on, in order: stream batches the scorer's event source mapping discarded to the scorer
        DLQ, and send messages the send queue's redrive policy moved to the send DLQ.

        A scorer entry is the on-failure record Lambda sends to the DLQ (`requestContext`, `responseContext`,
        `DDBStreamBatchInfo`: the discarded records' range), plus, local only, `records`: each discarded record's
        sequence number, keys and the scorer's error in the last attempt (null for a record that attempt scored: Lambda
        discards the whole range from the first failed record on). A send entry is the message in the send DLQ: its id,
        receive count and send request, with the sender's last error.
        """
        with self.lock:
            return list(self.captured.dead_letters)

    # --- pumps --------------------------------------------------------------------------------
    def _invoke_batch(self, name: str, event: dict[str, Any], identifiers: list[str]) -> Outcome:
        """Invoke a batch handler as Lambda's poller does: an exception fails the invocation, and so the whole batch;
        it never stops the pump. The errors are the batch processor's (module-level `processor` in the handler)."""
        try:
            response = self.invoke(name, event)
        except Exception as error:
            children = getattr(error, "child_exceptions", None) or []
            if len(children) == len(identifiers):  # powertools' BatchProcessingError: every record failed, each why
                errors = [_describe(info[1]) for info in children]
            else:
                errors = [_describe(error)] * len(identifiers)
            logger.warning("local stack: the %s invocation failed: %s", name, _describe(error))
            return Outcome(failed=dict(zip(identifiers, errors, strict=True)), function_error=type(error).__name__)
        reported = [str(f.get("itemIdentifier")) for f in (response or {}).get("batchItemFailures") or []]
        exceptions = getattr(getattr(self._handlers[name], "processor", None), "exceptions", None) or []
        if len(exceptions) == len(reported):  # powertools reports failures in the order it met them
            return Outcome(failed={i: _describe(info[1]) for i, info in zip(reported, exceptions, strict=True)})
        return Outcome(failed=dict.fromkeys(reported, "reported as failed"))

    def _pump_stream(self) -> int:
        """Read every shard's new records and score them in batches, each batch settled before the next."""
        streams = self.client("dynamodbstreams")
        read = 0
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
            records = answer["Records"]
            for start in range(0, len(records), c.SCORER_BATCH_SIZE):
                self._score(shard["ShardId"], records[start : start + c.SCORER_BATCH_SIZE])
            read += len(records)
        return read

    def _score(self, shard_id: str, batch: list[dict[str, Any]]) -> None:
        """Hand a batch to the scorer as the deployed event source mapping does, until every record is scored or
        discarded (the shard waits meanwhile, as in AWS; AWS retries after a short back-off, this at once).

        - Failures reported (`batchItemFailures`): the records before the first failed one are done; the records from
          it on are retried, which uses one of `SCORER_RETRY_ATTEMPTS` retries.
        - A failed invocation (it raised): the batch is split in two and each half retried, first half first; splitting
          uses no retry (a batch of one record is retried whole, using one).
        - No retry left, or a record older than `SCORER_MAX_RECORD_AGE_SECONDS`: the failed records (from the first on)
          are discarded to the scorer DLQ.
        """
        pending = [_StreamBatch(batch)]
        while pending:
            attempt = pending.pop(0)
            numbers = [_sequence_number(r) for r in attempt.records]
            outcome = self._invoke_batch("scorer", stream_event(attempt.records, self.stream_arn), numbers)
            invocations = attempt.invocations + 1
            if not outcome.failed:
                continue
            if outcome.function_error is not None and len(attempt.records) > 1:
                half = len(attempt.records) // 2
                pending[0:0] = [
                    _StreamBatch(attempt.records[:half], attempt.retries, invocations),
                    _StreamBatch(attempt.records[half:], attempt.retries, invocations),
                ]
                continue
            # An unknown item identifier fails the whole batch, as in AWS.
            first = min((numbers.index(n) for n in outcome.failed if n in numbers), default=0)
            remaining = attempt.records[first:]
            if _oldest_age(remaining) > c.SCORER_MAX_RECORD_AGE_SECONDS:
                self._discard(shard_id, remaining, outcome, invocations, "RecordAgeExceeded")
            elif attempt.retries >= c.SCORER_RETRY_ATTEMPTS:
                self._discard(shard_id, remaining, outcome, invocations, "RetryAttemptsExhausted")
            else:
                pending.insert(0, _StreamBatch(remaining, attempt.retries + 1, invocations))

    def _discard(
        self, shard_id: str, records: list[dict[str, Any]], outcome: Outcome, invocations: int, condition: str
    ) -> None:
        """Send the scorer DLQ what Lambda sends an on-failure destination about a discarded stream batch."""
        numbers = [_sequence_number(r) for r in records]
        arrivals = [_arrival(r) for r in records]
        response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
        if outcome.function_error is not None:
            response["functionError"] = "Unhandled"
        record = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": f"arn:aws:lambda:{resources.REGION}:{self._account_id()}:function:nurture-scorer",
                "condition": condition,
                "approximateInvokeCount": invocations,
            },
            "responseContext": response,
            "version": "1.0",
            "timestamp": self.now().isoformat(),
            "DDBStreamBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": numbers[0],
                "endSequenceNumber": numbers[-1],
                "approximateArrivalOfFirstRecord": arrivals[0],
                "approximateArrivalOfLastRecord": arrivals[-1],
                "batchSize": len(records),
                "streamArn": self.stream_arn,
            },
        }
        self.client("sqs").send_message(QueueUrl=self.scorer_dlq_url, MessageBody=json.dumps(record))
        details = [
            {
                "sequenceNumber": number,
                "keys": {name: next(iter(value.values())) for name, value in r["dynamodb"].get("Keys", {}).items()},
                "error": outcome.failed.get(number),
            }
            for number, r in zip(numbers, records, strict=True)
        ]
        self.captured.dead_letters.append({"queue": c.SCORER_DLQ, **record, "records": details})

    def _pump_queue(self) -> int:
        """The send queue's poller: the sender, in batches of `SEND_BATCH_SIZE`, failures to the send DLQ."""
        sends = QueuePoller("sender", self.send_queue_url, self.send_queue_arn, c.SEND_BATCH_SIZE, c.SEND_DLQ)
        return self._poll(sends)

    def _poll(self, poller: QueuePoller) -> int:
        """Receive from a queue and invoke its function as Lambda's SQS poller does, until the queue is empty.

        A handled message is deleted; a failed one (reported, or the whole batch when the invocation raised) is made
        visible again at once (AWS waits for its visibility timeout) and received again, until the queue's redrive
        policy (moto's) moves it to the DLQ on the receive after its last allowed one.
        """
        sqs = self.client("sqs")
        received = 0
        while messages := sqs.receive_message(
            QueueUrl=poller.url, MaxNumberOfMessages=poller.batch_size, AttributeNames=["All"]
        ).get("Messages", []):
            received += len(messages)
            ids = [m["MessageId"] for m in messages]
            outcome = self._invoke_batch(poller.function, sqs_event(messages, poller.arn), ids)
            for message in messages:
                error = outcome.failed.get(message["MessageId"])
                if error is None:
                    sqs.delete_message(QueueUrl=poller.url, ReceiptHandle=message["ReceiptHandle"])
                else:
                    self._send_errors[message["MessageId"]] = error
                    sqs.change_message_visibility(
                        QueueUrl=poller.url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                    )
        self._collect_dead_letters(poller.dlq)
        return received

    def _collect_dead_letters(self, queue: str) -> None:
        """Note the messages the redrive policy has moved to a DLQ, read in this process from moto's backend:
        receiving them would count as a receive."""
        dlq = sqs_backends[self._account_id()][resources.REGION].get_queue(queue)
        for message in dlq.messages:
            if message.id in self._dead_sends:
                continue
            self._dead_sends.add(message.id)
            self.captured.dead_letters.append(
                {
                    "queue": queue,
                    "messageId": message.id,
                    "receiveCount": message.approximate_receive_count,
                    "request": json.loads(message.body),
                    "error": self._send_errors.pop(message.id, None),
                    "at": self.now().isoformat(),
                }
            )

    def _pump_alerts(self) -> int:
        """The alerts queue's poller (the alerts function), then what the sales topic delivered to its subscriber."""
        handled = self._poll(
            QueuePoller("alerts", self.alerts_queue_url, self.alerts_queue_arn, c.ALERTS_BATCH_SIZE, c.ALERTS_DLQ)
        )
        sqs = self.client("sqs")
        while messages := sqs.receive_message(QueueUrl=self.alerts_tap_url, MaxNumberOfMessages=10).get("Messages", []):
            for message in messages:
                envelope = json.loads(message["Body"])  # SNS's notification, as an SQS subscriber gets it
                self.captured.sales_alerts.append(json.loads(envelope["Message"]))
                sqs.delete_message(QueueUrl=self.alerts_tap_url, ReceiptHandle=message["ReceiptHandle"])
                handled += 1
        return handled

    # --- SES feedback -----------------------------------------------------------------------------
    def ses_records(self, records: list[dict[str, Any]]) -> list[str]:
        """Publish SES records as SES does for the configuration set: on the default bus, where the rule queues them
        for the email-events function (run by `drain`). Records published together arrive in one batch, as a
        scanner's burst usually does. Returns the EventBridge ids."""
        arn = f"arn:aws:ses:{resources.REGION}:{self._account_id()}:configuration-set/{c.SES_CONFIGURATION_SET}"
        entries = [
            {
                "Source": RECORD_SOURCE,
                "DetailType": DETAIL_TYPES[record["eventType"]],
                "Detail": json.dumps(record),
                "Resources": [arn],
                "Time": self.now(),
            }
            for record in records
        ]
        ids: list[str] = []
        with self.lock:
            for start in range(0, len(entries), 10):  # PutEvents takes ten entries a call
                answer = self.client("events").put_events(Entries=entries[start : start + 10])
                ids += [entry.get("EventId", "") for entry in answer["Entries"]]
        return ids

    def stored_messages(self, message_ids: set[str]) -> set[str]:
        """Which of these messageIds the events table holds (a scan: fine locally, never done by a Lambda)."""
        found: set[str] = set()
        with self.lock:
            scan = self.client("dynamodb").get_paginator("scan")
            names = {"#sk": c.EVENTS_SK}
            for page in scan.paginate(
                TableName=c.EVENTS_TABLE, ProjectionExpression="#sk", ExpressionAttributeNames=names
            ):
                found |= {item[c.EVENTS_SK]["S"] for item in page["Items"]} & message_ids
        return found

    def _pump_email_events(self) -> int:
        """The email-events queue's poller (the email-events function), failures to its DLQ."""
        sqs = self.client("sqs")
        url = sqs.get_queue_url(QueueName=c.EMAIL_EVENTS_QUEUE)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return self._poll(QueuePoller("email_events", url, arn, c.EMAIL_EVENTS_BATCH_SIZE, c.EMAIL_EVENTS_DLQ))

    def _account_id(self) -> str:
        if self._account is None:
            self._account = self.client("sts").get_caller_identity()["Account"]
        return self._account

    def _pump_bus_tap(self) -> int:
        sqs = self.client("sqs")
        handled = 0
        while messages := sqs.receive_message(QueueUrl=self.tap_url, MaxNumberOfMessages=10).get("Messages", []):
            for message in messages:
                event = json.loads(message["Body"])
                targets = {
                    c.SALES_ALERT_DETAIL_TYPE: self.captured.alerts,
                    c.LEAD_QUALIFIED_DETAIL_TYPE: self.captured.qualified,
                    c.STAGE_CHANGED_DETAIL_TYPE: self.captured.stage_changes,
                }
                targets[event["detail-type"]].append(event["detail"])
                sqs.delete_message(QueueUrl=self.tap_url, ReceiptHandle=message["ReceiptHandle"])
                handled += 1
        return handled

    def _set_env(self, values: dict[str, str]) -> None:
        for name, value in values.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _sequence_number(record: dict[str, Any]) -> str:
    return str(record["dynamodb"]["SequenceNumber"])


def _created(record: dict[str, Any]) -> float | None:
    created = record["dynamodb"].get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        return created.timestamp()
    return float(created) if created is not None else None


def _arrival(record: dict[str, Any]) -> str | None:
    created = _created(record)
    return datetime.fromtimestamp(created, tz=UTC).isoformat() if created is not None else None


def _oldest_age(records: list[dict[str, Any]]) -> float:
    """Seconds since the oldest record entered the stream, by the machine's clock (moto stamps records with it)."""
    times = [t for r in records if (t := _created(r)) is not None]
    return time.time() - min(times) if times else 0.0


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
