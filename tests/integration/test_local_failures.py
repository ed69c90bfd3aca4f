"""The local stack fails like AWS: what the deployed event source mappings retry, bisect and dead-letter, it does too.

The scorer's stream batches are retried (`SCORER_RETRY_ATTEMPTS`), split in two when the invocation fails, and then
discarded to the scorer DLQ; a send that keeps failing moves to the send DLQ after `SEND_MAX_RECEIVE_COUNT` receives;
`/_local/dead-letters` lists both; and neither stops a drain or a move of the clock half-way.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import pytest

from nurture import constants as c
from nurture.adapters.ses import SesMailer
from nurture.domain.messages import Message
from nurture.pipeline.leads import LeadService
from nurture.pipeline.ports import NotSent
from nurture.pipeline.score import ScoringProcessor
from nurture.runtime import clock
from nurture.runtime.clock import ManualClock
from nurture.tools.local.lambda_events import http_event
from nurture.tools.local.runtime import LocalStack
from nurture.tools.local.server import LocalServer
from tests.integration.conftest import WRITE_KEY

POISON = "poison-"  # the message ids the scorer fails on
REFUSED = "refused@northwind.example"  # the address the mailer refuses


@pytest.fixture(scope="module", autouse=True)
def _clock_put_back(stack: LocalStack) -> Iterator[None]:
    """These tests move the session's manual clock; the tests after them expect the time they started at."""
    assert stack.manual is not None
    start = stack.manual.now()
    yield
    stack.manual = ManualClock(start)
    clock.use(stack.manual)


@pytest.fixture
def scored(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The message ids of each call to the lead service; it fails every call with a poison message."""
    calls: list[list[str]] = []
    receive = LeadService.receive

    def poisoned(self: LeadService, messages: Sequence[Message], now: datetime) -> Any:
        calls.append([m.message_id for m in messages])
        if any(m.message_id.startswith(POISON) for m in messages):
            raise RuntimeError("the lead cannot be read")
        return receive(self, messages, now)

    monkeypatch.setattr(LeadService, "receive", poisoned)
    return calls


@pytest.fixture
def refused(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The addresses of each email the mailer refused: it refuses every email to REFUSED (nothing goes out)."""
    attempts: list[str] = []
    send = SesMailer.send

    def refusing(self: SesMailer, to: str, subject: str, text: str, html: str, tags: Any, headers: Any) -> str:
        if to == REFUSED:
            attempts.append(to)
            raise NotSent("MessageRejected: Email address is not verified")
        return send(self, to, subject, text, html, tags, headers)

    monkeypatch.setattr(SesMailer, "send", refusing)
    return attempts


def _identify(stack: LocalStack, user: str, message_id: str, email: str | None = None) -> None:
    body = {"userId": user, "messageId": message_id, "traits": {"email": email or f"{user}@northwind.example"}}
    headers = {"x-write-key": WRITE_KEY, "content-type": "application/json"}
    event = http_event("POST", "/v1/identify", "", headers, json.dumps(body).encode(), stack.now())
    assert stack.invoke("ingest", event)["statusCode"] == 200


def _scorer_letters(stack: LocalStack, message_id: str) -> list[dict[str, Any]]:
    return [
        letter
        for letter in stack.dead_letters()
        if letter["queue"] == c.SCORER_DLQ and any(r["keys"]["sk"] == message_id for r in letter["records"])
    ]


def _send_letters(stack: LocalStack, lead_id: str) -> list[dict[str, Any]]:
    return [d for d in stack.dead_letters() if d["queue"] == c.SEND_DLQ and d["request"]["lead_id"] == lead_id]


def _lead_id(stack: LocalStack, user: str) -> str:
    return stack.leads.leads_for([f"u#{user}"])[f"u#{user}"]


def test_a_failing_record_is_retried_then_dead_lettered_and_the_rest_of_its_batch_is_scored(
    stack: LocalStack, scored: list[list[str]]
) -> None:
    stack.drain()
    # Given one record the scorer fails on, between two it can score, in one batch
    _identify(stack, "u-before", "before-1")
    _identify(stack, "u-poison", f"{POISON}1")
    _identify(stack, "u-after", "after-1")
    # When the stack drains (it answers: the failure does not stop it)
    stack.drain()
    # Then the records around it are scored
    assert set(stack.leads.leads_for(["u#u-before", "u#u-poison", "u#u-after"])) == {"u#u-before", "u#u-after"}
    # And the failed record was tried once and retried SCORER_RETRY_ATTEMPTS times, then discarded to the DLQ
    assert sum(f"{POISON}1" in ids for ids in scored) == 1 + c.SCORER_RETRY_ATTEMPTS
    [letter] = _scorer_letters(stack, f"{POISON}1")
    assert letter["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert letter["requestContext"]["approximateInvokeCount"] == 1 + c.SCORER_RETRY_ATTEMPTS
    # The batch from the failed record on, as Lambda discards it; the record after it was scored, so no error
    records = {r["keys"]["sk"]: r for r in letter["records"]}
    assert list(records) == [f"{POISON}1", "after-1"]
    assert records[f"{POISON}1"]["keys"] == {"pk": "u#u-poison", "sk": f"{POISON}1"}
    assert records[f"{POISON}1"]["error"] == "RuntimeError: the lead cannot be read"
    assert records["after-1"]["error"] is None
    info = letter["DDBStreamBatchInfo"]
    assert (info["startSequenceNumber"], info["batchSize"]) == (records[f"{POISON}1"]["sequenceNumber"], 2)
    # And the scorer DLQ holds what Lambda sends an on-failure destination
    sqs = stack.client("sqs")
    dlq = sqs.get_queue_url(QueueName=c.SCORER_DLQ)["QueueUrl"]
    bodies = [json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10)["Messages"]]
    assert info in [b["DDBStreamBatchInfo"] for b in bodies]


def test_a_record_that_fails_the_whole_invocation_is_isolated_by_bisection(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack.drain()
    # Given a record that makes the scorer fail its whole invocation (a timeout, say), second of four in a batch
    batches: list[list[str]] = []
    score = ScoringProcessor.score

    def timing_out(self: ScoringProcessor, event: dict[str, Any], context: Any = None) -> Any:
        batches.append([r["dynamodb"]["Keys"]["sk"]["S"] for r in event["Records"]])
        if f"{POISON}2" in batches[-1]:
            raise TimeoutError("Task timed out after 60.00 seconds")
        return score(self, event, context)

    monkeypatch.setattr(ScoringProcessor, "score", timing_out)
    for user, message_id in (("u-b1", "b-1"), ("u-b2", f"{POISON}2"), ("u-b3", "b-3"), ("u-b4", "b-4")):
        _identify(stack, user, message_id)
    # When the stack drains
    stack.drain()
    # Then the batch is split in two until the record is alone, which is retried, then discarded; the rest is scored
    poison = [f"{POISON}2"]
    retried = [poison] * (1 + c.SCORER_RETRY_ATTEMPTS)
    assert batches == [["b-1", *poison, "b-3", "b-4"], ["b-1", *poison], ["b-1"], *retried, ["b-3", "b-4"]]
    assert set(stack.leads.leads_for(["u#u-b1", "u#u-b2", "u#u-b3", "u#u-b4"])) == {"u#u-b1", "u#u-b3", "u#u-b4"}
    [letter] = _scorer_letters(stack, f"{POISON}2")
    assert letter["responseContext"]["functionError"] == "Unhandled"
    assert letter["DDBStreamBatchInfo"]["batchSize"] == 1
    assert [r["error"] for r in letter["records"]] == ["TimeoutError: Task timed out after 60.00 seconds"]


def test_a_record_older_than_the_maximum_age_is_discarded_without_retries(
    stack: LocalStack, scored: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    stack.drain()
    monkeypatch.setattr(c, "SCORER_MAX_RECORD_AGE_SECONDS", -1)  # every record is too old to retry
    _identify(stack, "u-old", f"{POISON}3")
    stack.drain()
    assert sum(f"{POISON}3" in ids for ids in scored) == 1
    [letter] = _scorer_letters(stack, f"{POISON}3")
    assert letter["requestContext"]["condition"] == "RecordAgeExceeded"


def test_a_send_that_always_fails_moves_to_the_send_dlq_after_the_redrive_count(
    stack: LocalStack, refused: list[str]
) -> None:
    # Given two new leads whose first emails go out in one batch, and the mailer refuses one of them
    _identify(stack, "u-refused", "refused-1", REFUSED)
    _identify(stack, "u-welcome", "welcome-1", "welcome@northwind.example")
    stack.drain()
    due = [stack.leads.get(_lead_id(stack, user)) for user in ("u-refused", "u-welcome")]
    assert stack.manual is not None
    stack.manual.set(max(s.due_at for s in due if s is not None and s.due_at is not None))
    # When the dispatcher queues both (a tick settles everything it caused, failures included)
    stack.tick()
    # Then the other email went out
    assert any("welcome@northwind.example" in e.to for e in stack.emails())
    # And the refused one was received SEND_MAX_RECEIVE_COUNT times, then moved to the send DLQ by the redrive policy
    assert refused == [REFUSED] * c.SEND_MAX_RECEIVE_COUNT
    lead_id = _lead_id(stack, "u-refused")
    [letter] = _send_letters(stack, lead_id)
    assert letter["receiveCount"] == c.SEND_MAX_RECEIVE_COUNT
    assert letter["request"]["content_id"].startswith("awareness-01")
    assert letter["error"] == "NotSent: MessageRejected: Email address is not verified"
    sqs = stack.client("sqs")
    dlq = sqs.get_queue_url(QueueName=c.SEND_DLQ)["QueueUrl"]
    bodies = [json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10)["Messages"]]
    assert letter["request"] in bodies
    assert sqs.receive_message(QueueUrl=stack.send_queue_url).get("Messages", []) == []


def _call(url: str, method: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_the_clock_moves_across_failures_and_the_dead_letters_list_them(
    stack: LocalStack, scored: list[list[str]], refused: list[str]
) -> None:
    # Given a record the scorer fails on, alone in its batch, and a lead whose every email the mailer refuses
    server = LocalServer(stack, 0).start()
    try:
        _identify(stack, "u-refused-2", "refused-2", REFUSED)
        assert _call(f"{server.url}/_local/drain", "POST")[0] == 200
        _identify(stack, "u-poison-4", f"{POISON}4")
        # When the clock moves a day over HTTP
        status, answer = _call(f"{server.url}/_local/clock", "POST", {"advance_days": 1})
        # Then it moved all the way, and the dead letters list both failures
        assert status == 200, answer
        assert answer["now"] == stack.now().isoformat()
        status, letters = _call(f"{server.url}/_local/dead-letters", "GET")
    finally:
        server.stop()
    assert status == 200
    lead_id = _lead_id(stack, "u-refused-2")
    sends = [d for d in letters if d["queue"] == c.SEND_DLQ and d["request"]["lead_id"] == lead_id]
    assert [(d["receiveCount"], d["error"][:7]) for d in sends] == [(c.SEND_MAX_RECEIVE_COUNT, "NotSent")]
    scorer = [d for d in letters if d["queue"] == c.SCORER_DLQ]
    poisoned = [r for d in scorer for r in d["records"] if r["keys"]["sk"] == f"{POISON}4"]
    assert [r["error"] for r in poisoned] == ["RuntimeError: the lead cannot be read"]
