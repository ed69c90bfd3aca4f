"""The handlers on moto: real-shaped events in, DynamoDB/SQS/SES/EventBridge effects out."""

from __future__ import annotations

import copy
import itertools
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from botocore.exceptions import ClientError, ReadTimeoutError

from nurture import constants as c
from nurture.runtime import clients as aws
from nurture.tools.local.lambda_events import LocalContext, http_event, scheduled_event, sqs_event
from nurture.tools.local.runtime import LocalStack, ReceivedEmail, _load_handler
from tests.integration.conftest import ADMIN_TOKEN, WRITE_KEY
from tests.support import ROOT

SAMPLES = ROOT / "events" / "lambda"


def _sample(name: str) -> dict[str, Any]:
    return json.loads((SAMPLES / name).read_text())


def _post(stack: LocalStack, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    event = http_event(
        "POST",
        path,
        "",
        {"x-write-key": WRITE_KEY, "content-type": "application/json"},
        json.dumps(body).encode(),
        stack.now(),
    )
    response = stack.invoke("ingest", event)
    return response["statusCode"], json.loads(response["body"])


def _events_for(stack: LocalStack, profile: str) -> list[dict[str, Any]]:
    return stack.client("dynamodb").query(
        TableName=c.EVENTS_TABLE, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": profile}}
    )["Items"]


def test_the_sample_api_event_is_stored_once_with_the_clock_skew_corrected(stack: LocalStack) -> None:
    event = _sample("api-track.json")
    first = stack.invoke("ingest", event)
    again = stack.invoke("ingest", copy.deepcopy(event))
    assert json.loads(first["body"]) | {"errors": []} == {"success": True, "accepted": 1, "duplicates": 0, "errors": []}
    assert json.loads(again["body"])["duplicates"] == 1
    [item] = _events_for(stack, "u#u-ada")
    stored = json.loads(item["message"]["S"])
    # sent 0.88 s after it happened by the client's clock, received at 10:00:00 by ours
    assert stored["timestamp"].startswith("2026-01-05T09:59:59.12")
    assert "writeKey" not in stored
    retention = int(item[c.EVENTS_TTL_ATTRIBUTE]["N"]) - int(stack.now().timestamp())
    assert abs(retention - c.EVENTS_RETENTION_DAYS * 86400) < 86400


def test_the_scorer_fails_only_the_record_it_cannot_read(stack: LocalStack) -> None:
    good = _sample("stream-event-inserted.json")["Records"][0]
    good = copy.deepcopy(good)
    good["dynamodb"]["NewImage"]["pk"] = {"S": "u#u-scorer"}
    message = json.loads(good["dynamodb"]["NewImage"]["message"]["S"]) | {"userId": "u-scorer", "messageId": "s-1"}
    good["dynamodb"]["NewImage"]["message"] = {"S": json.dumps(message)}
    bad = copy.deepcopy(good)
    bad["dynamodb"]["SequenceNumber"] = "4421584500000000017450439999"
    bad["dynamodb"]["NewImage"]["message"] = {"S": "{not json"}
    response = stack.invoke("scorer", {"Records": [good, bad]})
    assert response == {"batchItemFailures": [{"itemIdentifier": "4421584500000000017450439999"}]}
    assert stack.leads.leads_for(["u#u-scorer"])  # the readable event made its (anonymous-until-identified) lead


# --- the sender: at most once, counted where recipients would see it (the emails SES accepted) -----------
def _queued_send(stack: LocalStack, user: str, address: str) -> dict[str, Any]:
    """A new lead's first send request, taken off the send queue before the stack's own pump delivers it."""
    status, _ = _post(stack, "/v1/identify", {"userId": user, "messageId": f"{user}-1", "traits": {"email": address}})
    assert status == 200
    stack.drain()
    lead_id = stack.leads.leads_for([f"u#{user}"])[f"u#{user}"]
    stored = stack.leads.get(lead_id)
    assert stored is not None
    assert stored.due_at is not None
    assert stack.manual is not None
    stack.manual.set(max(stack.now(), stored.due_at))  # its first email is due: in business hours
    stack.invoke("dispatcher", scheduled_event(stack.now()))
    sqs = stack.client("sqs")
    messages = sqs.receive_message(QueueUrl=stack.send_queue_url, MaxNumberOfMessages=10)["Messages"]
    [mine] = [m for m in messages if json.loads(m["Body"])["lead_id"] == lead_id]
    for other in messages:  # other leads' sends go back to the queue, for the pump
        if other is not mine:
            sqs.change_message_visibility(
                QueueUrl=stack.send_queue_url, ReceiptHandle=other["ReceiptHandle"], VisibilityTimeout=0
            )
    return mine


def _emails_to(stack: LocalStack, address: str) -> list[ReceivedEmail]:
    return [e for e in stack.emails() if address in e.to]


def _done_with(stack: LocalStack, message: dict[str, Any]) -> None:
    stack.client("sqs").delete_message(QueueUrl=stack.send_queue_url, ReceiptHandle=message["ReceiptHandle"])


def test_a_send_request_delivered_twice_sends_one_email(stack: LocalStack) -> None:
    message = _queued_send(stack, "u-twice", "twice@northwind.example")
    event = sqs_event([message], stack.send_queue_arn)
    for _ in range(2):  # SQS is at-least-once: the same batch again
        assert stack.invoke("sender", copy.deepcopy(event)) == {"batchItemFailures": []}
    _done_with(stack, message)
    [email] = _emails_to(stack, "twice@northwind.example")
    assert email.subject in {"Why most nurture drips stall", 'The problem with "six emails over 30 days"'}  # A/B
    sent = [o for o in stack.outbox() if o["to"] == "twice@northwind.example"]
    assert [(o["content_id"], o["message_id"]) for o in sent] == [("awareness-01-why-drips-stall", email.message_id)]


def test_a_send_request_queued_again_in_a_later_batch_sends_one_email(stack: LocalStack) -> None:
    message = _queued_send(stack, "u-again", "again@northwind.example")
    assert stack.invoke("sender", sqs_event([message], stack.send_queue_arn)) == {"batchItemFailures": []}
    _done_with(stack, message)
    # The same request queued again as a new message (a republished outbox does this), in a later batch
    sqs = stack.client("sqs")
    sqs.send_message(QueueUrl=stack.send_queue_url, MessageBody=message["Body"])
    later = sqs.receive_message(QueueUrl=stack.send_queue_url, MaxNumberOfMessages=10)["Messages"]
    [again] = [m for m in later if m["Body"] == message["Body"]]
    assert again["MessageId"] != message["MessageId"]
    assert stack.invoke("sender", sqs_event(later, stack.send_queue_arn)) == {"batchItemFailures": []}
    for m in later:
        _done_with(stack, m)
    assert len(_emails_to(stack, "again@northwind.example")) == 1


def test_two_concurrent_deliveries_of_a_send_request_send_one_email(stack: LocalStack) -> None:
    message = _queued_send(stack, "u-race", "race@northwind.example")
    event = sqs_event([message], stack.send_queue_arn)
    # Two instances of the sender (as Lambda runs concurrent invocations), the first held inside its call to SES
    # until the second has finished: the second finds the first's send in progress.
    first, second = _load_handler("sender"), _load_handler("sender")
    first_in_ses, second_done = threading.Event(), threading.Event()
    calls = itertools.count()

    def hold_the_first(**_: Any) -> None:
        if next(calls) == 0:
            first_in_ses.set()
            second_done.wait(timeout=20)

    ses = aws.client("sesv2")
    ses.meta.events.register("before-call.sesv2.SendEmail", hold_the_first)
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            running = pool.submit(first.handler, copy.deepcopy(event), LocalContext("nurture-sender"))
            assert first_in_ses.wait(timeout=20)
            try:
                assert second.handler(copy.deepcopy(event), LocalContext("nurture-sender")) == {"batchItemFailures": []}
            finally:
                second_done.set()
            assert running.result(timeout=30) == {"batchItemFailures": []}
    finally:
        ses.meta.events.unregister("before-call.sesv2.SendEmail", hold_the_first)
    _done_with(stack, message)
    assert len(_emails_to(stack, "race@northwind.example")) == 1


def test_the_dispatcher_reads_only_the_due_leads(stack: LocalStack) -> None:
    for n in range(5):
        _post(
            stack,
            "/v1/identify",
            {"userId": f"u-due-{n}", "messageId": f"due-{n}", "traits": {"email": f"due{n}@northwind.example"}},
        )
    stack.drain()
    stack.tick()  # everyone's first email: nobody is due again for two weeks
    reads: list[str] = []
    ddb = aws.client("dynamodb")
    hook = lambda model, **_: reads.append(model.name)  # noqa: E731
    ddb.meta.events.register("before-call.dynamodb", hook)
    try:
        report = stack.invoke("dispatcher", _sample("scheduled-dispatch.json") | {"time": stack.now().isoformat()})
    finally:
        ddb.meta.events.unregister("before-call.dynamodb", hook)
    assert report["due"] == 0
    # The due index and nothing else: per shard, one query for the due leads (each entry carries its due time, so
    # the dispatcher-lag gauge needs no second read). Constant: never a read per lead in the table.
    assert set(reads) == {"Query"}
    assert len(reads) == c.DUE_SHARDS


def test_stage_changes_reach_the_bus_without_personal_data(stack: LocalStack) -> None:
    _post(
        stack,
        "/v1/identify",
        {"userId": "u-bus", "messageId": "bus-1", "traits": {"email": "bus@northwind.example", "first_name": "Bea"}},
    )
    _post(stack, "/v1/track", {"userId": "u-bus", "messageId": "bus-2", "event": "Demo Requested"})
    stack.drain()
    lead_id = stack.leads.leads_for(["u#u-bus"])["u#u-bus"]
    changes = [e for e in stack.captured.stage_changes if e["lead_id"] == lead_id]
    alerts = [e for e in stack.captured.alerts if e["lead_id"] == lead_id]
    assert [(e["from"], e["to"]) for e in changes] == [(None, "awareness"), ("awareness", "decision")]
    assert [a["reason"] for a in alerts] == ["Demo request"]
    assert "bus@northwind.example" not in json.dumps(changes + alerts)
    assert "Bea" not in json.dumps(changes + alerts)


def test_the_clock_runs_each_due_tick_in_order(stack: LocalStack) -> None:
    _post(
        stack,
        "/v1/identify",
        {"userId": "u-clock", "messageId": "clk-1", "traits": {"email": "clock@northwind.example"}},
    )
    stack.drain()
    stack.advance(timedelta(days=29))
    sent = [o for o in stack.outbox() if o["to"] == "clock@northwind.example"]
    assert [o["content_id"][:12] for o in sent] == ["awareness-01", "awareness-02", "awareness-03"]
    times = [datetime.fromisoformat(o["sent_at"]) for o in sent]
    assert {later - earlier for earlier, later in itertools.pairwise(times)} == {timedelta(days=14)}


def test_a_send_whose_answer_from_ses_is_lost_is_not_sent_again(stack: LocalStack) -> None:
    # Given SES accepts the email, and the answer is lost on the way back (a read timeout)
    message = _queued_send(stack, "u-lost", "lost@northwind.example")
    event = sqs_event([message], stack.send_queue_arn)

    def lose_the_answer(**_: Any) -> None:
        raise ReadTimeoutError(endpoint_url="https://email.eu-west-1.amazonaws.com")

    ses = aws.client("sesv2")
    ses.meta.events.register("after-call.sesv2.SendEmail", lose_the_answer)
    try:
        first = stack.invoke("sender", copy.deepcopy(event))
    finally:
        ses.meta.events.unregister("after-call.sesv2.SendEmail", lose_the_answer)
    # When SQS delivers the request again
    again = stack.invoke("sender", copy.deepcopy(event))
    _done_with(stack, message)
    # Then SES holds one email, and neither delivery asked for a retry
    assert first == again == {"batchItemFailures": []}
    assert len(_emails_to(stack, "lost@northwind.example")) == 1


def test_a_send_ses_refused_is_retried_and_sent_once(stack: LocalStack) -> None:
    # Given SES throttles the first attempt (it answers with an error: nothing went out)
    message = _queued_send(stack, "u-throttled", "throttled@northwind.example")
    event = sqs_event([message], stack.send_queue_arn)

    def throttle(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "TooManyRequestsException", "Message": "slow down"}}, "SendEmail")

    ses = aws.client("sesv2")
    ses.meta.events.register("before-call.sesv2.SendEmail", throttle)
    try:
        # powertools fails an invocation whose every record failed, so Lambda retries the batch
        with pytest.raises(BatchProcessingError):
            stack.invoke("sender", copy.deepcopy(event))
    finally:
        ses.meta.events.unregister("before-call.sesv2.SendEmail", throttle)
    # When SQS delivers it again
    again = stack.invoke("sender", copy.deepcopy(event))
    _done_with(stack, message)
    # Then the retry sent the one email
    assert again == {"batchItemFailures": []}
    assert len(_emails_to(stack, "throttled@northwind.example")) == 1


# --- the admin view: what became of each email --------------------------------------------------------------
def _sends_of(stack: LocalStack, message: dict[str, Any]) -> list[dict[str, Any]]:
    """The lead's `sends`, as an admin sees them: GET /v1/leads/{id} through the ingest function."""
    lead_id = json.loads(message["Body"])["lead_id"]
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    response = stack.invoke("ingest", http_event("GET", f"/v1/leads/{lead_id}", "", admin, b"", stack.now()))
    assert response["statusCode"] == 200, response["body"]
    sends: list[dict[str, Any]] = json.loads(response["body"])["sends"]
    return sends


def test_an_admin_sees_an_email_whose_answer_from_ses_was_lost_as_unconfirmed(stack: LocalStack) -> None:
    # Given two leads' first emails, queued
    lost = _queued_send(stack, "u-lost-view", "lost-view@northwind.example")
    [queued] = _sends_of(stack, lost)
    assert (queued["content_id"], queued["delivery"], queued["provider_id"]) == (
        "awareness-01-why-drips-stall",
        "not_sent",
        None,
    )
    sent = _queued_send(stack, "u-sent-view", "sent-view@northwind.example")

    # When SES accepts both, and its answer to the first is lost on the way back
    def lose_the_answer(**_: Any) -> None:
        raise ReadTimeoutError(endpoint_url="https://email.eu-west-1.amazonaws.com")

    ses = aws.client("sesv2")
    ses.meta.events.register("after-call.sesv2.SendEmail", lose_the_answer)
    try:
        assert stack.invoke("sender", sqs_event([lost], stack.send_queue_arn)) == {"batchItemFailures": []}
    finally:
        ses.meta.events.unregister("after-call.sesv2.SendEmail", lose_the_answer)
    assert stack.invoke("sender", sqs_event([sent], stack.send_queue_arn)) == {"batchItemFailures": []}
    _done_with(stack, lost)
    _done_with(stack, sent)

    # Then the admin view says the first is unconfirmed (it went out, unknown to us), the second sent, by SES's id
    [unconfirmed] = _sends_of(stack, lost)
    assert (unconfirmed["delivery"], unconfirmed["provider_id"]) == ("unconfirmed", None)
    assert unconfirmed["sent_at"] is not None
    assert len(_emails_to(stack, "lost-view@northwind.example")) == 1
    [email] = _emails_to(stack, "sent-view@northwind.example")
    [delivered] = _sends_of(stack, sent)
    assert (delivered["delivery"], delivered["provider_id"]) == ("sent", email.message_id)
