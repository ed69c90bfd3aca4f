"""AWS requests per unit of work through the real handlers on the local stack (moto over HTTP).

Ingests synthetic Segment messages through the ingest handler (single routes and /v1/batch), drains
the events table's stream through the scorer, then moves the manual clock on so the dispatcher ticks
due leads and the sender mails them. Every botocore call is counted with an event hook on the clients
the handlers use, attributed to the Lambda being invoked; the local stack's own pump (stream and queue
polling, next-due look-ups) is counted apart: in AWS that is Lambda's event-source work, not ours.

The scorer is measured twice: "trickle" drains after every ingest request (stream batches of one
request's few records, as a quiet site sees) and "bulk" drains once after many requests (batches of
up to 100 records, as a busy site sees). Last, the largest batch the API accepts is ingested alone.
Its writes run 16 at a time, but moto's server shares this process and its GIL, so here they cannot
overlap as DynamoDB round trips do: `tests/bench/batch.py` measures that effect with a latency model.

Run: python -m tests.bench.pipeline  (prints the figures and records them in docs/benchmarks.md)
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import platform
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import botocore.client
import botocore.endpoint
from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS
from aws_lambda_powertools.utilities.parameters.secrets import SecretsProvider

from nurture import constants as c
from nurture.domain.system_events import is_system_event
from nurture.pipeline.dispatch import WORKERS
from nurture.pipeline.ingest import MAX_BATCH_BYTES, MAX_BATCH_MESSAGES
from nurture.runtime import clients as aws
from nurture.runtime.observability import logger
from nurture.tools.local.lambda_events import http_event, scheduled_event
from nurture.tools.local.runtime import LocalStack
from nurture.tools.population import population
from tests.bench.record import record

ROOT = Path(__file__).resolve().parents[2]
MONDAY = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday, 09:00 UTC
LEADS = 80  # about 340 messages
HISTORY_DAYS = 30  # the population's messages all fall in the month before MONDAY
ADVANCE = timedelta(days=14)  # two weeks of dispatcher ticks and sends
BATCH_SIZE = 20  # messages per /v1/batch request
WRITE_KEY = "wk"
HANDLER_SERVICES = ("dynamodb", "events", "sqs", "sesv2", "s3", "secretsmanager")
DDB_OPERATIONS = ("GetItem", "BatchGetItem", "PutItem", "TransactWriteItems", "UpdateItem", "Query")
OTHER_OPERATIONS = (
    ("events", "PutEvents"),
    ("sqs", "SendMessageBatch"),
    ("sesv2", "SendEmail"),
    ("s3", "GetObject"),
    ("secretsmanager", "GetSecretValue"),
)
PIPELINE = ("trickle", "bulk", "advance")
LARGEST = "largest batch"
IDLE = "idle tick"  # one dispatcher invocation with nothing due
REQUESTS_JSON = ROOT / "docs" / "bench" / "requests.json"
PUMP = "pump"


class Calls:
    """Botocore API calls by (phase, caller, service, operation), counted by event hooks on chosen clients."""

    def __init__(self) -> None:
        self.phase = "setup"
        self.lambda_name = "outside"  # the Lambda being invoked, set by the wrapped `stack.invoke`
        self.counts: Counter[tuple[str, str, str, str]] = Counter()
        self.tables: Counter[tuple[str, str, str]] = Counter()  # DynamoDB requests by (phase, caller, table)
        self.errors: Counter[tuple[str, str, str]] = Counter()
        self.entries: Counter[tuple[str, str]] = Counter()  # entries in batch calls, by (caller, operation)
        # Seconds inside API calls, by (phase, caller).
        self.waiting: defaultdict[tuple[str, str], float] = defaultdict(float)
        self.hooked = 0
        self.everything = 0  # every API call in the process, to show that no client escaped the hooks
        self.invocation = 0  # numbered by the wrapped `stack.invoke`
        # What the writes were, for the floors: lead writes that saved outbox entries, outbox removals, count
        # updates; and the count items each invocation updated (its floor: each once).
        self.writes: Counter[tuple[str, str, str]] = Counter()
        self.count_items: set[tuple[str, str, int, str]] = set()

    def attach(self, client: Any, caller: str | None = None) -> None:
        """Count the client's calls as `caller`'s, or, when None, as the Lambda's being invoked."""

        def before(model: Any, params: dict[str, Any], **_: Any) -> None:
            who = caller or self.lambda_name
            service = model.service_model.service_name
            self.hooked += 1
            self.counts[self.phase, who, service, model.name] += 1
            if "Entries" in params and self.phase in PIPELINE:
                self.entries[who, model.name] += len(params["Entries"])
            if service == "dynamodb":
                for table in _tables(params):
                    self.tables[self.phase, who, table] += 1
                self._classify(who, model.name, params)

        def after(model: Any, parsed: dict[str, Any], **_: Any) -> None:
            code = parsed.get("Error", {}).get("Code")
            if code:
                self.errors[caller or self.lambda_name, model.name, code] += 1

        client.meta.events.register("before-parameter-build", before)  # once per API call, retries included
        client.meta.events.register("after-call", after)

    def _classify(self, who: str, operation: str, params: dict[str, Any]) -> None:
        puts = [params] if operation == "PutItem" else []
        puts += [i["Put"] for i in params.get("TransactItems", []) if "Put" in i]
        for put in puts:
            item = put.get("Item", {})
            if item.get(c.LEADS_SK, {}).get("S") == "STATE" and item.get("outbox", {}).get("M"):
                self.writes[self.phase, who, "lead write with outbox entries"] += 1
        if operation == "UpdateItem":
            key = params.get("Key", {})
            pk = key.get(c.LEADS_PK, {}).get("S", "")
            if pk.startswith(c.METRICS_PK_PREFIX):
                self.writes[self.phase, who, "count update"] += 1
                self.count_items.add((self.phase, who, self.invocation, f"{pk}/{key[c.LEADS_SK]['S']}"))
            elif "REMOVE outbox." in params.get("UpdateExpression", ""):
                self.writes[self.phase, who, "outbox removal"] += 1

    def distinct_counts(self, who: str, phases: tuple[str, ...]) -> int:
        """The count items `who` updated, each once per invocation: the floor of its count updates."""
        return sum(1 for p, w, *_ in self.count_items if w == who and p in phases)

    @contextlib.contextmanager
    def counting_everything(self) -> Iterator[None]:
        """Count every API call, and time the HTTP exchanges: `waiting` is the wall time during which at least
        one request of the Lambda was on the wire (overlapping requests of its threads count once). What is left
        of the handler's time is its own work, botocore's serialising and parsing included: CPU, roughly."""
        original = botocore.client.BaseClient._make_api_call
        send = botocore.endpoint.Endpoint._send
        lock = threading.Lock()
        flight = {"n": 0, "since": 0.0}

        def counted(client: Any, operation: str, params: dict[str, Any]) -> Any:
            self.everything += 1
            return original(client, operation, params)

        def sent(endpoint: Any, request: Any) -> Any:
            key = (self.phase, self.lambda_name)
            with lock:
                flight["n"] += 1
                if flight["n"] == 1:
                    flight["since"] = time.perf_counter()
            try:
                return send(endpoint, request)
            finally:
                with lock:
                    flight["n"] -= 1
                    if flight["n"] == 0:
                        self.waiting[key] += time.perf_counter() - flight["since"]

        botocore.client.BaseClient._make_api_call = counted  # type: ignore[method-assign,unused-ignore]
        botocore.endpoint.Endpoint._send = sent  # type: ignore[method-assign,unused-ignore]
        try:
            yield
        finally:
            botocore.client.BaseClient._make_api_call = original  # type: ignore[method-assign,unused-ignore]
            botocore.endpoint.Endpoint._send = send  # type: ignore[method-assign,unused-ignore]

    def total(
        self, who: str, service: str | None = None, op: str | None = None, phases: tuple[str, ...] = PIPELINE
    ) -> int:
        return sum(
            n
            for (p, w, s, o), n in self.counts.items()
            if w == who and p in phases and service in (None, s) and op in (None, o)
        )

    def reset(self) -> None:
        self.counts.clear()
        self.tables.clear()
        self.errors.clear()
        self.entries.clear()
        self.waiting.clear()
        self.writes.clear()
        self.count_items.clear()
        self.hooked = self.everything = 0


def _tables(params: dict[str, Any]) -> set[str]:
    if "TableName" in params:
        return {params["TableName"]}
    if "RequestItems" in params:
        return set(params["RequestItems"])
    return {next(iter(item.values()))["TableName"] for item in params.get("TransactItems", [])}


class Work:
    """What each Lambda was given and did (the denominators), and the time spent inside it, by phase."""

    def __init__(self) -> None:
        self.invocations: Counter[tuple[str, str]] = Counter()
        self.records: Counter[tuple[str, str]] = Counter()  # stream records / queue messages handed over
        self.seconds: defaultdict[tuple[str, str], float] = defaultdict(float)
        self.accepted: Counter[str] = Counter()
        self.duplicates = 0
        self.requests: Counter[tuple[str, str]] = Counter()  # ingest requests by (phase, route)
        self.route_seconds: defaultdict[tuple[str, str], float] = defaultdict(float)
        self.route_messages: Counter[tuple[str, str]] = Counter()
        self.ticked = 0
        self.due = 0

    def sum(self, counter: Mapping[tuple[str, str], float], name: str, phases: tuple[str, ...] = PIPELINE) -> Any:
        return sum(counter[p, name] for p in phases)


def wrap_invoke(stack: LocalStack, calls: Calls, work: Work) -> None:
    """Attribute calls to the Lambda being invoked and note what it was given (the stack itself is unchanged)."""
    invoke = stack.invoke

    def counted(name: str, event: dict[str, Any]) -> Any:
        key = (calls.phase, name)
        calls.lambda_name = name
        calls.invocation += 1
        started = time.perf_counter()
        try:
            result = invoke(name, event)
        finally:
            work.seconds[key] += time.perf_counter() - started
            calls.lambda_name = "outside"
        work.invocations[key] += 1
        work.records[key] += len(event.get("Records", []))
        if name == "ingest":
            body = json.loads(result["body"])
            if result["statusCode"] != 200:
                raise RuntimeError(f"ingest answered {result['statusCode']}: {body}")
            work.accepted[calls.phase] += body["accepted"]
            work.duplicates += body["duplicates"]
        elif name == "dispatcher":
            work.ticked += result["ticked"]
            work.due += result["due"]
        return result

    stack.invoke = counted  # type: ignore[method-assign,unused-ignore]


def requests(leads: range) -> list[tuple[str, bytes]]:
    """(path, body) of the leads' messages, oldest first: even-numbered leads post each message on its
    own route (/v1/identify, /v1/page, /v1/track), odd-numbered ones in /v1/batch requests. Email opens
    and unsubscribes are left out: they come from SES feedback and the unsubscribe link, not the public API."""
    messages = sorted(
        (
            m
            for m in population(LEADS, MONDAY - timedelta(days=HISTORY_DAYS), days=HISTORY_DAYS)
            if not is_system_event(m.get("event", ""))
        ),
        key=lambda m: m["timestamp"],
    )
    number = {id(m): int(m["messageId"][2:7]) for m in messages}  # "u-00042-3" -> 42
    single = [m for m in messages if number[id(m)] in leads and number[id(m)] % 2 == 0]
    batched = [m for m in messages if number[id(m)] in leads and number[id(m)] % 2 == 1]
    out = [(f"/v1/{m['type']}", json.dumps(m).encode()) for m in single]
    out += [
        ("/v1/batch", json.dumps({"batch": batched[i : i + BATCH_SIZE]}).encode())
        for i in range(0, len(batched), BATCH_SIZE)
    ]
    return out


def largest_batch() -> tuple[str, bytes]:
    """The largest batch the API accepts: 2,500 page views from 100 anonymous visitors."""
    batch = [
        {
            "type": "page",
            "messageId": f"big-{i:04d}",
            "anonymousId": f"a-big-{i % 100:03d}",
            "timestamp": (MONDAY - timedelta(minutes=i)).isoformat(),
            "properties": {"path": f"/blog/post-{i % 7}"},
        }
        for i in range(MAX_BATCH_MESSAGES)
    ]
    body = json.dumps({"batch": batch}).encode()
    assert len(body) <= MAX_BATCH_BYTES, len(body)
    return "/v1/batch", body


def ingest(stack: LocalStack, calls: Calls, work: Work, pairs: list[tuple[str, bytes]], drain: str) -> None:
    """Post each request to the ingest handler; drain the stack after "each" request, after "all", or "never"."""
    headers = {
        "authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode(),
        "content-type": "application/json",
    }
    for path, body in pairs:
        key = (calls.phase, "batch" if path == "/v1/batch" else "single")
        accepted = work.accepted[calls.phase]
        started = time.perf_counter()
        stack.invoke("ingest", http_event("POST", path, "", headers, body, stack.now()))
        work.route_seconds[key] += time.perf_counter() - started
        work.requests[key] += 1
        work.route_messages[key] += work.accepted[calls.phase] - accepted
        if drain == "each":
            stack.drain()
    if drain != "never":
        stack.drain()


def run(calls: Calls, work: Work) -> dict[str, int]:
    logger.setLevel("WARNING")  # as the local stack asks; the logger was built at import, before it could
    stack = LocalStack(ROOT / "content", WRITE_KEY, "admin", manual_start=MONDAY)
    stack.start()
    try:
        for service in HANDLER_SERVICES:
            calls.attach(aws.client(service))  # the handlers' clients: built once per process, then cached
        for service in ("dynamodb", "dynamodbstreams", "sqs"):
            calls.attach(stack.client(service), caller=PUMP)  # the stack playing Lambda's event sources
        # The api reads write keys through powertools' parameters, which builds its own client on first use:
        # build that provider now, exactly as `get_secret` would, so that its calls are counted too.
        DEFAULT_PROVIDERS["secrets"] = SecretsProvider()
        calls.attach(DEFAULT_PROVIDERS["secrets"].client)
        wrap_invoke(stack, calls, work)
        calls.reset()
        calls.phase = "trickle"
        ingest(stack, calls, work, requests(range(LEADS // 2)), drain="each")
        calls.phase = "bulk"
        ingest(stack, calls, work, requests(range(LEADS // 2, LEADS)), drain="all")
        calls.phase = "advance"
        stack.advance(ADVANCE)
        outcome = {
            "stage_changes": len(stack.captured.stage_changes),
            "alerts": len(stack.captured.alerts),
            "dead_letters": len(stack.captured.dead_letters),
            "ses_emails": len(stack.emails()),  # what SES accepted: a second copy of an email would show here
        }
        calls.phase = IDLE
        stack.invoke("dispatcher", scheduled_event(stack.now()))  # a tick with nothing due: the fixed cost
        calls.phase = LARGEST
        ingest(stack, calls, work, [largest_batch()], drain="never")  # ingest latency only: not scored
        calls.phase = "done"
        return outcome
    finally:
        stack.stop()


def main() -> None:
    calls, work = Calls(), Work()
    started = time.perf_counter()
    with calls.counting_everything(), contextlib.redirect_stdout(io.StringIO()):  # powertools' metrics print
        outcome = run(calls, work)
    wall = time.perf_counter() - started
    body = report(calls, work, outcome, wall)
    measured = units(calls, work)
    names = ("ingest", "scorer", "dispatcher_lead", "dispatcher_invocation", "sender")
    for name, (*_, units_of_work, requests, floor, _) in zip(names, floors(calls, work), strict=True):
        if units_of_work:
            measured[name]["dynamodb_requests"] = round(requests / units_of_work, 4)
            measured[name]["dynamodb_floor"] = round(floor / units_of_work, 4)
    write_requests(measured)
    print(body)
    record("pipeline", "AWS requests per unit of work through the real handlers (local stack, moto)", body)


def units(calls: Calls, work: Work) -> dict[str, dict[str, Any]]:
    """Requests per unit of work by "service Operation", the handler's own time per unit (wall time less the time
    a request was on the wire) and AWS requests per unit, for the cost model (`tests/bench/cost.py`).

    The dispatcher is split so that nothing is counted twice: "dispatcher_invocation" is one tick with nothing
    due (what every scheduled run costs), "dispatcher_lead" is what the ticks of the run cost beyond that,
    per lead ticked."""

    def measured(name: str, phases: tuple[str, ...]) -> tuple[Counter[str], float]:
        counted: Counter[str] = Counter()
        for (p, w, s, o), n in calls.counts.items():
            if w == name and p in phases:
                counted[f"{s} {o}"] += n
        own = sum(work.seconds[p, name] - calls.waiting[p, name] for p in phases)
        return counted, own

    def unit(per: str, count: float, counted: Mapping[str, float], own: float, note: str = "") -> dict[str, Any]:
        requests = {k: round(v / count, 4) for k, v in sorted(counted.items()) if v > 0} if count else {}
        out = {
            "per": per,
            "count": int(count),
            "requests": requests,
            "handler_ms": round(max(0.0, 1000 * own / count), 3) if count else 0.0,
            "aws_calls": round(sum(requests.values()), 4),
        }
        return out | ({"note": note} if note else {})

    out: dict[str, dict[str, Any]] = {}
    accepted = sum(work.accepted[p] for p in PIPELINE)
    out["ingest"] = unit("message accepted", accepted, *measured("ingest", PIPELINE))
    out["scorer"] = unit(
        "stream record",
        work.records["bulk", "scorer"],
        *measured("scorer", ("bulk",)),
        note="bulk: stream batches of up to 100 records (a busy site)",
    )
    idle, idle_own = measured("dispatcher", (IDLE,))
    idle_runs = work.invocations[IDLE, "dispatcher"]
    out["dispatcher_invocation"] = unit(
        "invocation", idle_runs, idle, idle_own, note="one scheduled tick with nothing due: the due index read"
    )
    ticking, ticking_own = measured("dispatcher", PIPELINE)
    runs = work.sum(work.invocations, "dispatcher")
    per_run = {k: v / max(1, idle_runs) for k, v in idle.items()}
    beyond = {k: max(0.0, v - runs * per_run.get(k, 0.0)) for k, v in ticking.items()}
    out["dispatcher_lead"] = unit(
        "lead ticked",
        work.ticked,
        beyond,
        ticking_own - runs * idle_own / max(1, idle_runs),
        note=f"{runs} ticks of {work.ticked} leads, less {runs} x dispatcher_invocation; the leads are ticked by "
        f"{WORKERS} threads, so their AWS calls overlap: a run lasts about aws_calls x latency / {WORKERS} a lead, "
        "not aws_calls x latency (tests/bench/dispatch.py)",
    )
    emails = calls.total("sender", "sesv2", "SendEmail")
    out["sender"] = unit("email sent", emails, *measured("sender", PIPELINE))
    return out


WITHIN = 1.10  # the target: at the floor, or within 10% of it
SENDER_FLOOR = 3  # the claim before SES (with what is sent), the lead read, the confirmation after SES
DISPATCHER_LEAD_FLOOR = 3  # the lead read, its conditional write (the send in its outbox), the entry's removal


def floors(calls: Calls, work: Work) -> list[tuple[str, str, float, float, float, str]]:
    """(unit, per, units, DynamoDB requests per unit measured, the floor per unit, how the floor is made up).

    The floors are argued in docs/benchmarks.md ("The floor of each unit of work"). Where a floor depends on the
    workload (how many leads a stream batch touched, which writes saved effects to publish, which count items a
    batch updated), it is counted from the requests themselves, independently of how the code got there."""

    def ddb(who: str, phases: tuple[str, ...], op: str | None = None) -> int:
        return calls.total(who, "dynamodb", op, phases)

    def written(who: str, phases: tuple[str, ...], what: str) -> int:
        return sum(n for (p, w, k), n in calls.writes.items() if w == who and p in phases and k == what)

    rows: list[tuple[str, str, float, float, float, str]] = []
    accepted = sum(work.accepted[p] for p in PIPELINE)
    rows.append(("ingest", "message accepted", accepted, ddb("ingest", PIPELINE), float(accepted), "1 PutItem"))
    bulk = ("bulk",)
    records = work.records["bulk", "scorer"]
    reads = ddb("scorer", bulk, "BatchGetItem") + ddb("scorer", bulk, "GetItem")
    leads = ddb("scorer", bulk, "PutItem") + ddb("scorer", bulk, "TransactWriteItems")
    removals = written("scorer", bulk, "lead write with outbox entries")
    counts = calls.distinct_counts("scorer", bulk)
    rows.append(
        (
            "scorer (bulk)",
            "stream record",
            records,
            ddb("scorer", bulk),
            float(reads + leads + removals + counts),
            f"{reads} reads (links, leads) + {leads} lead writes (one per lead per batch) + {removals} removals "
            f"(writes that saved an effect to publish) + {counts} count items (each once a batch)",
        )
    )
    runs = work.sum(work.invocations, "dispatcher")
    ticking = ddb("dispatcher", PIPELINE) - runs * calls.total("dispatcher", "dynamodb", phases=(IDLE,))
    counts = calls.distinct_counts("dispatcher", PIPELINE)
    rows.append(
        (
            "dispatcher",
            "lead ticked",
            work.ticked,
            ticking,
            float(DISPATCHER_LEAD_FLOOR * work.ticked + counts),
            f"{DISPATCHER_LEAD_FLOOR} a lead + {counts} count items (each once a run); the due index read apart",
        )
    )
    idle = work.invocations[IDLE, "dispatcher"]
    rows.append(
        (
            "dispatcher",
            "invocation (nothing due)",
            idle,
            ddb("dispatcher", (IDLE,)),
            float(idle * c.DUE_SHARDS),
            f"one Query per shard of the due index ({c.DUE_SHARDS})",
        )
    )
    emails = calls.total("sender", "sesv2", "SendEmail")
    counts = calls.distinct_counts("sender", PIPELINE)
    rows.append(
        (
            "sender",
            "email sent",
            emails,
            ddb("sender", PIPELINE),
            float(SENDER_FLOOR * emails + counts),
            f"{SENDER_FLOOR} an email + {counts} count items (each once an invocation)",
        )
    )
    return rows


def floor_table(rows: list[tuple[str, str, float, float, float, str]]) -> str:
    out = "| unit of work | per | units | DynamoDB requests per unit | floor per unit | floor made of | verdict |\n"
    out += "| --- | --- | ---: | ---: | ---: | --- | --- |\n"
    for unit, per_unit, units, measured, floor, made_of in rows:
        verdict = "PASS" if measured <= WITHIN * floor else "MISS"
        out += f"| {unit} | {per_unit} | {units:,.0f} | {measured / units:.3f} | {floor / units:.3f} | {made_of} "
        out += f"| **{verdict}** |\n"
    return out


def write_requests(measured: dict[str, dict[str, Any]], path: Path = REQUESTS_JSON) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "measured": f"{datetime.now(UTC):%Y-%m-%d}",
        "machine": f"{platform.machine()}, Python {platform.python_version()}, moto over HTTP on 127.0.0.1",
        "source": "tests/bench/pipeline.py",
        "units": measured,
    }
    path.write_text(json.dumps(data, indent=2) + "\n")


def per(n: float, d: float) -> str:
    if not d:
        return "-"
    return f"{n / d:.3f}" if 0 < n / d < 0.01 else f"{n / d:.2f}"


def report(calls: Calls, work: Work, outcome: dict[str, int], wall: float) -> str:
    emails = calls.total("sender", "sesv2", "SendEmail")
    scored = {p: work.records[p, "scorer"] for p in ("trickle", "bulk")}
    accepted = sum(work.accepted[p] for p in PIPELINE)
    dispatches = work.sum(work.invocations, "dispatcher")
    # (Lambda, label, unit, units, phases)
    rows = [
        ("ingest", "ingest", "message accepted", accepted, PIPELINE),
        ("scorer", "scorer, trickle", "stream record", scored["trickle"], ("trickle",)),
        ("scorer", "scorer, bulk", "stream record", scored["bulk"], ("bulk",)),
        ("dispatcher", "dispatcher", "lead ticked", work.ticked, PIPELINE),
        ("dispatcher", "dispatcher", "invocation", dispatches, PIPELINE),
        ("sender", "sender", "email sent", emails, PIPELINE),
    ]
    ddb = "| Lambda | per | units | DynamoDB requests | " + " | ".join(DDB_OPERATIONS) + " |\n"
    ddb += "| --- | --- | ---: | ---: |" + " ---: |" * len(DDB_OPERATIONS) + "\n"
    for name, label, unit, units, phases in rows:
        figures = [per(calls.total(name, "dynamodb", op, phases), units) for op in DDB_OPERATIONS]
        ddb += f"| {label} | {unit} | {units:,} | {per(calls.total(name, 'dynamodb', phases=phases), units)} | "
        ddb += " | ".join(figures) + " |\n"
    sender = {t: n for (p, w, t), n in calls.tables.items() if w == "sender" and p in PIPELINE}
    idempotency = sum(n for t, n in sender.items() if "idempotency" in t)
    ddb += (
        f"\nThe sender's {per(sum(sender.values()), emails)} DynamoDB requests per email: "
        f"{per(idempotency, emails)} on the idempotency table, {per(sum(sender.values()) - idempotency, emails)} "
        f"on the leads table.\n"
    )

    other = "| Lambda | per | " + " | ".join(f"{s} {o}" for s, o in OTHER_OPERATIONS) + " |\n"
    other += "| --- | --- |" + " ---: |" * len(OTHER_OPERATIONS) + "\n"
    for name, label, unit, units, phases in rows:
        figures = [per(calls.total(name, s, o, phases), units) for s, o in OTHER_OPERATIONS]
        other += f"| {label} | {unit} | " + " | ".join(figures) + " |\n"
    listed = {("dynamodb", op) for op in DDB_OPERATIONS} | set(OTHER_OPERATIONS)
    unlisted = Counter(
        {
            f"{w} {s} {o}": n
            for (p, w, s, o), n in calls.counts.items()
            if w != PUMP and p in PIPELINE and (s, o) not in listed
        }
    )
    other += "\nOther requests by the Lambdas: " + (", ".join(f"{k} x{n}" for k, n in unlisted.items()) or "none")
    other += ".\n"
    entries = [
        f"{w} {o} {per(n, calls.total(w, op=o))}"
        for (w, o), n in sorted(calls.entries.items())
        if w != PUMP and o in ("PutEvents", "SendMessageBatch")
    ]
    other += "\nEntries per batch request (up to 10 allowed): " + ", ".join(entries) + ".\n"

    pump = "| local-stack pump (not pipeline work) | trickle | bulk | advance |\n| --- | ---: | ---: | ---: |\n"
    for service, op in sorted({(s, o) for (_, w, s, o) in calls.counts if w == PUMP}):
        pump += f"| {service} {op} | " + " | ".join(f"{calls.total(PUMP, service, op, (p,)):,}" for p in PIPELINE)
        pump += " |\n"

    def inside(name: str, phases: tuple[str, ...]) -> str:
        seconds = work.sum(work.seconds, name, phases)
        waiting = sum(calls.waiting[p, name] for p in phases)
        return f"{seconds:.1f} s in the handler, {100 * waiting / seconds:.0f}% of it in AWS calls"

    ingesting = ("trickle", "bulk")
    singles = sum(work.requests[p, "single"] for p in ingesting)
    single_ms = 1000 * sum(work.route_seconds[p, "single"] for p in ingesting) / singles
    batches = sum(work.requests[p, "batch"] for p in ingesting)
    batch_s = sum(work.route_seconds[p, "batch"] for p in ingesting)
    batch_messages = sum(work.route_messages[p, "batch"] for p in ingesting)
    big_messages, big_seconds = work.accepted[LARGEST], work.route_seconds[LARGEST, "batch"]
    big_ddb = calls.total("ingest", "dynamodb", phases=(LARGEST,))
    big_waiting = 100 * calls.waiting[LARGEST, "ingest"] / work.seconds[LARGEST, "ingest"]
    scorer = {p: work.seconds[p, "scorer"] for p in ingesting}
    dispatcher_ms = 1000 * work.sum(work.seconds, "dispatcher") / max(1, dispatches)
    sender_ms = 1000 * work.sum(work.seconds, "sender") / max(1, emails)
    throughput = table(
        "throughput against moto over HTTP on 127.0.0.1 (not AWS: moto's server runs in this process, on the "
        'same 2 cores, so "in AWS calls" includes moto\'s own work)',
        [
            (
                "ingest: messages per second",
                f"{accepted / work.sum(work.seconds, 'ingest'):,.0f} ({accepted:,} messages; "
                f"{inside('ingest', PIPELINE)})",
            ),
            ("ingest: one single-route request", f"{single_ms:.1f} ms"),
            (f"ingest: one message in a /v1/batch of {BATCH_SIZE}", f"{1000 * batch_s / batch_messages:.1f} ms"),
            (
                f"ingest: the largest batch the API takes ({big_messages:,} messages, {big_ddb:,} DynamoDB "
                "requests in one invocation)",
                f"{big_seconds:.1f} s against moto, which serialises the 16 concurrent writers "
                f"(AWS call time summed over threads: {big_waiting:.0f}% of wall time); see the batch bench",
            ),
            *(
                (
                    f"scorer, {p}: stream records per second",
                    f"{scored[p] / scorer[p]:,.0f} ({inside('scorer', (p,))})",
                )
                for p in ingesting
            ),
            ("dispatcher: one invocation", f"{dispatcher_ms:,.0f} ms ({inside('dispatcher', PIPELINE)})"),
            ("sender: per email sent", f"{sender_ms:.0f} ms ({inside('sender', PIPELINE)})"),
            ("whole run, wall clock (moto start, resources, pump and largest batch included)", f"{wall:.0f} s"),
        ],
    )
    errors = ", ".join(f"{w} {o} {c} x{n}" for (w, o, c), n in sorted(calls.errors.items())) or "none"
    sender_work = [work.sum(work.invocations, "sender"), work.sum(work.records, "sender"), emails]
    workload = table(
        "workload",
        [
            (
                f"leads (`nurture.tools.population`, {HISTORY_DAYS} days of history before "
                f"Mon {MONDAY:%Y-%m-%d %H:%M} UTC)",
                f"{LEADS}",
            ),
            ("messages accepted / duplicates", f"{accepted:,} / {work.duplicates:,}"),
            (f"ingest requests: single route / `/v1/batch` ({BATCH_SIZE} a batch)", f"{singles:,} / {batches:,}"),
            (
                "scorer, trickle (drain after each request): invocations / stream records",
                f"{work.invocations['trickle', 'scorer']:,} / {scored['trickle']:,}",
            ),
            (
                "scorer, bulk (drain after all requests): invocations / stream records",
                f"{work.invocations['bulk', 'scorer']:,} / {scored['bulk']:,}",
            ),
            (
                "clock moved on / dispatcher invocations / leads due / leads ticked",
                f"{ADVANCE.days} days / {dispatches:,} / {work.due:,} / {work.ticked:,}",
            ),
            (
                "sender invocations / queue messages / emails sent (emails SES received)",
                " / ".join(f"{n:,}" for n in sender_work) + f" ({outcome['ses_emails']:,})",
            ),
            (
                "stage changes / sales alerts on the bus; scorer dead letters",
                f"{outcome['stage_changes']:,} / {outcome['alerts']:,}; {outcome['dead_letters']}",
            ),
            ("error responses from AWS (included in the figures)", errors),
            ("API calls by clients without a counting hook", f"{calls.everything - calls.hooked}"),
        ],
    )
    return (
        "\n"
        + workload
        + '\nDynamoDB requests per unit of work against the floor (argued in "The floor of each unit of work" '
        + "below), target: within 10% of it:\n\n"
        + floor_table(floors(calls, work))
        + "\nDynamoDB requests per unit of work, by operation:\n\n"
        + ddb
        + "\nOther services, requests per unit of work:\n\n"
        + other
        + "\nThe local stack's pump stands in for Lambda's event-source polling; counted apart, in requests:\n\n"
        + pump
        + "\n"
        + throughput
    )


def table(header: str, rows: list[tuple[str, str]]) -> str:
    return f"| {header} | value |\n| --- | --- |\n" + "".join(f"| {label} | {value} |\n" for label, value in rows)


if __name__ == "__main__":
    main()
