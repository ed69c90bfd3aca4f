"""What one dispatcher tick reads from DynamoDB (10,000 leads of which 100 are due, against a full scan), and how
long a Monday backlog of 10,000 due leads takes to tick under a latency model.

The leads table is moto in-process (`mock_aws`), created from `nurture.tools.local.resources.TABLES`; lead items
are written as `LeadTable` writes them. The dispatcher runs with the real `LeadTable` and in-memory queue,
bus and mailer. Every DynamoDB response is counted by an after-call hook: requests, Query pages and the
items they returned, GetItem calls and the items they returned, writes. A paginated Scan of the same table
shows what a dispatcher without the due index would read.

The backlog: 10,000 leads all due, the real `LeadTable`, `SqsSendQueue` and `MetricsTable` on moto in-process,
and every AWS request the dispatcher makes held for 10 ms in a botocore before-call hook (the bus, which these
ticks do not use, sleeps 10 ms a call too): `dispatch()` as the handler calls it, timed, once with one worker (on
fewer leads: the old one-at-a-time dispatcher) and once with `WORKERS`. moto's own CPU shares the process and its
GIL, so the figure is pessimistic for AWS, where that work is DynamoDB's.

Run: python -m tests.bench.dispatch  (prints the figures and records them in docs/benchmarks.md)
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from moto import mock_aws

from nurture import constants as c
from nurture.adapters.dynamodb import LeadTable, iso
from nurture.adapters.metrics import MetricsTable
from nurture.adapters.sqs import SqsSendQueue
from nurture.domain.journey import Tick, new_lead, step
from nurture.domain.programme import Programme, Stage
from nurture.pipeline.dispatch import WORKERS, dispatch
from nurture.pipeline.leads import LeadService
from nurture.pipeline.ports import StoredLead
from nurture.tools.local.resources import REGION, TABLES
from tests.bench.record import record
from tests.fakes import FakeBus, FakeQueue, fake_ports
from tests.support import identify, starter

LEADS = 10_000
DUE = 100
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday, 09:00 UTC: the send window opens
# Weekdays before NOW (Fri, Thu, ... Tue the week before): each not-yet-due lead told us its email on one of
# these, in business hours, and had its first email, so its next one is due within the next two weeks.
PAST_WEEKDAYS = (3, 4, 5, 6, 7, 10, 11, 12, 13)


class DynamoCounter:
    """Counts DynamoDB requests and the items their responses carried, from an after-call hook."""

    def __init__(self) -> None:
        self.index: str | None = None  # the index of the request in flight
        self.requests: Counter[str] = Counter()  # by operation (Query by index)
        self.items: Counter[str] = Counter()
        self.scanned: Counter[str] = Counter()  # ScannedCount: what Query/Scan read before any filter
        self.read_units: defaultdict[str, float] = defaultdict(float)  # estimated, from item sizes (see `read_units`)

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-parameter-build.dynamodb", self._before)
        client.meta.events.register("after-call.dynamodb", self._after)

    def _before(self, params: dict[str, Any], **_: Any) -> None:
        self.index = params.get("IndexName")

    def _after(self, model: Any, parsed: dict[str, Any], **_: Any) -> None:
        operation = model.name
        if operation == "Query":
            operation = f"Query {self.index or 'table'}"
        self.requests[operation] += 1
        if "Items" in parsed:
            self.items[operation] += len(parsed["Items"])
            self.scanned[operation] += parsed.get("ScannedCount", len(parsed["Items"]))
            if operation != "Scan":  # a Scan is charged for what it read, not for what its filter returned
                self.read_units[operation] += read_units(parsed["Items"], consistent=False, per_item=False)
        elif "Item" in parsed:
            self.items[operation] += 1
            self.read_units[operation] += read_units([parsed["Item"]], consistent=True, per_item=True)

    def reset(self) -> None:
        for counter in (self.requests, self.items, self.scanned, self.read_units):
            counter.clear()


def item_size(item: dict[str, Any]) -> int:
    """DynamoDB's item size, roughly: attribute name lengths plus value lengths (strings and numbers)."""
    return sum(len(name) + len(json.dumps(value)) for name, value in item.items())


def read_units(items: list[dict[str, Any]], consistent: bool, per_item: bool) -> float:
    """Estimated read capacity: 4 KB units, per item for GetItem, over the summed page size for Query/Scan;
    halved when eventually consistent (the due index and Scan's default)."""
    sizes = [item_size(i) for i in items] if per_item else [sum(item_size(i) for i in items)]
    units = sum(max(1, math.ceil(size / 4096)) for size in sizes) if items else 0
    return units if consistent else units / 2


def lead_at(number: int, programme: Programme, due: bool) -> StoredLead:
    """A lead in Awareness whose next email is due at NOW (due) or within the next two weeks (not due)."""
    user = f"u-{number:05d}"
    if due:  # told us its email just before the send window opened: its first email is due at NOW
        at = NOW - timedelta(minutes=5 + number % 50)
        lead = step(new_lead(f"lead-{number:05d}"), identify(at, user=user), programme, at).lead
    else:  # told us on a past weekday, in business hours, and has had its first email
        at = NOW - timedelta(days=PAST_WEEKDAYS[number % len(PAST_WEEKDAYS)], minutes=-(number % 420))
        lead = step(new_lead(f"lead-{number:05d}"), identify(at, user=user), programme, at).lead
        first = lead.next_action_at(programme)
        assert first is not None
        lead = step(lead, Tick(), programme, first).lead
    due_at = lead.next_action_at(programme)
    assert lead.stage is Stage.AWARENESS
    assert due_at is not None
    assert (due_at <= NOW) is due, (number, due_at)
    return StoredLead(lead=lead, version=1, profiles=frozenset({f"u#{user}"}), due_at=due_at)


def load(client: Any, table: LeadTable, leads: list[StoredLead]) -> None:
    for start in range(0, len(leads), 25):
        request = {table.table: [{"PutRequest": {"Item": table._item(s)}} for s in leads[start : start + 25]]}
        while request:
            request = client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}


BACKLOG = 10_000  # a Monday morning: every lead due at once
SEQUENTIAL = 200  # leads ticked one at a time, to show the old dispatcher's rate (10,000: about 8 minutes)
LATENCY_S = 0.010  # every AWS request the dispatcher makes
TARGET_S = 300.0  # one five-minute tick


class SlowSqs:
    """SQS's SendMessageBatch for the real `SqsSendQueue`, LATENCY_S a request: moto's queue rescans every message
    on each send, which at 10,000 messages would measure moto, not the dispatcher."""

    def __init__(self) -> None:
        self.entries = 0
        self.requests = 0

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        time.sleep(LATENCY_S)
        self.requests += 1
        self.entries += len(Entries)
        return {"Successful": [{"Id": e["Id"]} for e in Entries]}


class SlowBus(FakeBus):
    def publish(self, effects: Any) -> None:
        time.sleep(LATENCY_S)
        super().publish(effects)


def backlog(programme: Programme, leads: int, workers: int) -> dict[str, Any]:
    """Tick `leads` due leads with `workers` threads, every AWS request taking LATENCY_S; the time and requests."""
    stored = [lead_at(n, programme, due=True) for n in range(leads)]
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        client.create_table(TableName=c.LEADS_TABLE, BillingMode="PAY_PER_REQUEST", **TABLES[c.LEADS_TABLE])
        sqs = SlowSqs()
        table = LeadTable(client, c.LEADS_TABLE)
        load(client, table, stored)
        requests: Counter[str] = Counter()

        def slow(model: Any, **_: Any) -> None:
            requests[f"{model.service_model.service_name} {model.name}"] += 1  # Counter +=: one bytecode-ish op
            time.sleep(LATENCY_S)

        client.meta.events.register("before-call", slow)
        ports = fake_ports()
        ports.leads, ports.due_shards = table, table.due_shards
        ports.queue, ports.bus = SqsSendQueue(sqs, c.SEND_QUEUE), SlowBus()
        ports.metrics = MetricsTable(client, c.LEADS_TABLE)
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            report = dispatch(LeadService(ports, programme), NOW, workers=workers)
        elapsed = time.perf_counter() - started
        client.meta.events.unregister("before-call", slow)
        requests["sqs SendMessageBatch"] = sqs.requests
        # Every lead ticked once: each got its first email queued, none is due any more, no outbox entry is left
        assert (report.due, report.ticked, report.failed) == (leads, leads, 0), report
        assert not [lead for shard in range(table.due_shards) for lead in table.due(shard, NOW)]
        assert sqs.entries == leads, sqs.entries
        left = [table.get(f"lead-{n:05d}") for n in range(0, leads, max(1, leads // 100))]
        assert all(s is not None and s.outbox == () for s in left)
    return {"leads": leads, "workers": workers, "seconds": elapsed, "requests": requests, "report": report}


def backlog_body(one: dict[str, Any], many: dict[str, Any]) -> str:
    rate_one = one["leads"] / one["seconds"]
    rate_many = many["leads"] / many["seconds"]
    total = sum(many["requests"].values())
    by_op = ", ".join(f"{op} {n / many['leads']:.3f}" for op, n in sorted(many["requests"].items()))
    verdict = "PASS" if many["seconds"] <= TARGET_S else "MISS"
    return f"""
### A Monday backlog: {BACKLOG:,} due leads, every AWS request {LATENCY_S * 1000:.0f} ms

| figure | measured | target | verdict |
| --- | ---: | ---: | --- |
| {BACKLOG:,} due leads ticked, {LATENCY_S * 1000:.0f} ms a request ({many["workers"]} workers) \
| {many["seconds"]:.1f} s | at most {TARGET_S:.0f} s | **{verdict}** |

| {BACKLOG:,} due leads, every AWS request {LATENCY_S * 1000:.0f} ms | leads | workers | wall time | leads a second |
| --- | ---: | ---: | ---: | ---: |
| one worker: one lead at a time, as before issue 12 | {one["leads"]:,} | 1 | {one["seconds"]:.1f} s | {rate_one:,.0f} |
| in parallel (`pipeline/dispatch.py`) | {many["leads"]:,} | {many["workers"]} | {many["seconds"]:.1f} s \
| {rate_many:,.0f} |

One at a time, the same backlog would take about {BACKLOG / rate_one:,.0f} s (measured on {one["leads"]:,} leads,
scaled). Measured: `dispatch()` as the handler calls it, with the real DynamoDB and metrics adapters on moto
in-process, each request held {LATENCY_S * 1000:.0f} ms by a botocore before-call hook, and the real SQS adapter on a
client stub that holds each SendMessageBatch {LATENCY_S * 1000:.0f} ms (moto's queue rescans every message on each
send). moto's CPU (its expression parser mostly) shares the process and the GIL with the dispatcher's, so the run
is CPU-bound here, and AWS, where that work is DynamoDB's, would be faster. Checked: every lead ticked once,
{many["leads"]:,} send requests queued, none left due, no outbox entry left. AWS requests per lead:
{total / many["leads"]:.2f} ({by_op}).
"""


def main() -> None:
    programme = starter()
    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": REGION})
    os.environ.pop("AWS_ENDPOINT_URL", None)
    body = reads()
    one = backlog(programme, SEQUENTIAL, workers=1)
    many = backlog(programme, BACKLOG, workers=WORKERS)
    body += backlog_body(one, many)
    print(body)
    record("dispatch", "One dispatcher tick: what it reads (10,000 leads, 100 due) and a backlog of 10,000 due", body)


def reads() -> str:
    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": REGION})
    os.environ.pop("AWS_ENDPOINT_URL", None)
    programme = starter()
    started = time.perf_counter()
    due_numbers = set(range(0, LEADS, LEADS // DUE))  # every 100th lead is due, spread over the shards
    leads = [lead_at(n, programme, due=n in due_numbers) for n in range(LEADS)]
    build_seconds = time.perf_counter() - started
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        client.create_table(TableName=c.LEADS_TABLE, BillingMode="PAY_PER_REQUEST", **TABLES[c.LEADS_TABLE])
        table = LeadTable(client, c.LEADS_TABLE)
        started = time.perf_counter()
        load(client, table, leads)
        load_seconds = time.perf_counter() - started

        counter = DynamoCounter()
        counter.attach(client)
        # What a dispatcher without the due index would read: every item, for the few that are due.
        found = 0
        for page in client.get_paginator("scan").paginate(
            TableName=c.LEADS_TABLE,
            FilterExpression="#d <= :now",
            ExpressionAttributeNames={"#d": c.LEADS_DUE_AT_ATTRIBUTE},
            ExpressionAttributeValues={":now": {"S": iso(NOW)}},
        ):
            found += page["Count"]
        scan = Figures(counter, found)
        stored = sum(item_size(table._item(lead)) for lead in leads)
        scan.mean_item = stored / len(leads)
        scan.units["Scan"] = stored / 4096 / 2  # every item read once, eventually consistent
        total_items = client.describe_table(TableName=c.LEADS_TABLE)["Table"]["ItemCount"]

        counter.reset()
        ports = fake_ports()
        queue = FakeQueue()
        ports.leads, ports.due_shards, ports.queue, ports.bus = table, table.due_shards, queue, FakeBus()
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # powertools' metrics print their flush
            report = dispatch(LeadService(ports, programme), NOW)
        dispatch_seconds = time.perf_counter() - started
        tick = Figures(counter, report.ticked)

        # Exactly the due leads were ticked: each got its first email queued, and none is due any more.
        expected = {f"lead-{n:05d}" for n in due_numbers}
        assert report.due == report.ticked == DUE, report
        assert report.failed == 0, report
        assert len(queue.queued) == DUE
        assert {r.lead_id for r in queue.queued} == expected
        assert not [lead for shard in range(table.due_shards) for lead in table.due(shard, NOW)]
    timings = (
        f"Moto in-process, not AWS: {LEADS:,} leads built in {build_seconds:.1f} s, written with BatchWriteItem in "
        f"{load_seconds:.1f} s; the tick ran in {dispatch_seconds:.2f} s."
    )
    return report_body(tick, scan, total_items, timings)


class Figures:
    """A snapshot of a counter's figures, with how many leads were found due (Scan) or ticked (dispatch)."""

    def __init__(self, counter: DynamoCounter, leads: int) -> None:
        self.requests = dict(counter.requests)
        self.items = dict(counter.items)
        self.scanned = dict(counter.scanned)
        self.units: dict[str, float] = dict(counter.read_units)
        self.leads = leads
        self.mean_item = 0.0


def report_body(tick: Figures, scan: Figures, total_items: int, timings: str) -> str:
    index = f"Query {c.LEADS_DUE_INDEX}"
    pages = tick.requests.get(index, 0)
    gets = tick.requests.get("GetItem", 0)
    rows = [
        ("lead items in the table", f"{LEADS:,}", f"{LEADS:,}"),
        ("leads due: ticked / found", f"{tick.leads}", f"{scan.leads}"),
        (f"index items read (Query pages: {pages}, one per shard)", f"{tick.scanned.get(index, 0):,}", "-"),
        ("index items returned", f"{tick.items.get(index, 0):,}", "-"),
        (f"lead items read (GetItem calls: {gets})", f"{tick.items.get('GetItem', 0):,}", "-"),
        (
            "items read in all",
            f"{tick.scanned.get(index, 0) + tick.items.get('GetItem', 0):,}",
            f"{scan.scanned.get('Scan', 0):,}",
        ),
        ("read requests", f"{pages + gets:,}", f"{scan.requests.get('Scan', 0):,} (Scan pages of up to 1 MB)"),
        (
            "read capacity, estimated from item sizes (index and Scan eventually consistent, GetItem strong)",
            f"{tick.units.get(index, 0) + tick.units.get('GetItem', 0):,.1f} RCU",
            f"{scan.units.get('Scan', 0):,.1f} RCU",
        ),
        (
            "writes while ticking: PutItem (lead) / UpdateItem (clear outbox)",
            f"{tick.requests.get('PutItem', 0)} / {tick.requests.get('UpdateItem', 0)}",
            "-",
        ),
    ]
    table = f"| one dispatcher tick, {NOW:%a %Y-%m-%d %H:%M} UTC | due index (as built) | naive full Scan |\n"
    table += "| --- | ---: | ---: |\n" + "".join(f"| {a} | {b} | {c} |\n" for a, b, c in rows)
    return (
        f"\n{table}\nChecked: the dispatcher ticked exactly the {DUE} due leads (each got its first Awareness "
        f"email queued; none is due afterwards). The table held {total_items:,} items, lead state items only: in "
        f"production a Scan would also read every profile link and send record. Mean lead item: "
        f"{scan.mean_item:,.0f} bytes. {timings}\n"
    )


if __name__ == "__main__":
    main()
