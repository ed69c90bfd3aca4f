"""The scorer on moto: each stream record parsed once, a malformed one failing alone, only inserts scored."""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Sequence
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import DynamoDBStreamRecordModel
from pydantic import BaseModel

from nurture.domain.messages import Message
from nurture.pipeline.leads import LeadService
from nurture.tools.local.runtime import LocalStack
from tests.support import ROOT

SAMPLE = json.loads((ROOT / "events" / "lambda" / "stream-event-inserted.json").read_text())["Records"][0]
_numbers = itertools.count(4421584500000000017450500000)


def _record(user: str, message_id: str, event_name: str = "INSERT", **message: Any) -> dict[str, Any]:
    """A stream record of the events table for `user`'s message, with its own sequence number."""
    record = copy.deepcopy(SAMPLE)
    record["eventName"] = event_name
    change = record["dynamodb"]
    change["SequenceNumber"] = str(next(_numbers))
    change["Keys"] = {"pk": {"S": f"u#{user}"}, "sk": {"S": message_id}}
    image = change["NewImage"]
    image["pk"], image["sk"] = change["Keys"]["pk"], change["Keys"]["sk"]
    body = json.loads(image["message"]["S"]) | {"userId": user, "messageId": message_id, **message}
    image["message"] = {"S": json.dumps(body)}
    return record


def _number(record: dict[str, Any]) -> str:
    return str(record["dynamodb"]["SequenceNumber"])


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(model, sequence number) of every stream record parsed with a powertools stream model."""
    seen: list[tuple[str, str]] = []
    validate = BaseModel.model_validate.__func__  # type: ignore[attr-defined]

    def model_validate(cls: type[BaseModel], /, obj: Any, **options: Any) -> BaseModel:
        seen.append((cls.__name__, str(obj.get("dynamodb", {}).get("SequenceNumber"))))
        return validate(cls, obj, **options)

    monkeypatch.setattr(DynamoDBStreamRecordModel, "model_validate", classmethod(model_validate))
    return seen


@pytest.fixture
def received(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The message ids of each call to the lead service: one call is one read and one write of a lead."""
    calls: list[list[str]] = []
    receive = LeadService.receive

    def counting(self: LeadService, messages: Sequence[Message], now: Any) -> str:
        calls.append([m.message_id for m in messages])
        return receive(self, messages, now)

    monkeypatch.setattr(LeadService, "receive", counting)
    return calls


def test_a_malformed_record_fails_alone_and_only_inserts_are_scored(
    stack: LocalStack, parses: list[tuple[str, str]], received: list[list[str]]
) -> None:
    # Given a stream batch: two good events of one profile, five malformed inserts, a MODIFY and a TTL REMOVE
    good = [_record("u-sc-good", "sc-1"), _record("u-sc-good", "sc-2", event="Pricing Viewed")]
    no_received_at = _record("u-sc-bad", "sc-3")
    del no_received_at["dynamodb"]["NewImage"]["received_at"]
    not_json = _record("u-sc-bad", "sc-4")
    not_json["dynamodb"]["NewImage"]["message"] = {"S": "{not json"}
    no_image = _record("u-sc-bad", "sc-5")
    del no_image["dynamodb"]["NewImage"]
    wrong_types = _record("u-sc-bad", "sc-6")
    wrong_types["dynamodb"]["NewImage"]["received_at"] = {"N": "1767607200"}
    wrong_types["dynamodb"]["NewImage"]["pk"] = {"N": "7"}
    not_attribute_values = _record("u-sc-bad", "sc-10")
    not_attribute_values["dynamodb"]["NewImage"]["sk"] = "sc-10"  # not {"S": "sc-10"}
    bad = [no_received_at, not_json, no_image, wrong_types, not_attribute_values]
    modified = _record("u-sc-modified", "sc-7", event_name="MODIFY")
    removed = _record("u-sc-removed", "sc-8", event_name="REMOVE")
    del removed["dynamodb"]["NewImage"]  # a NEW_IMAGE stream has no image of a removed item
    batch = [good[0], no_received_at, not_json, modified, good[1], no_image, removed, wrong_types, not_attribute_values]

    # When the scorer handles it
    response = stack.invoke("scorer", {"Records": copy.deepcopy(batch)})

    # Then only the malformed records are reported, for Lambda to retry
    assert response == {"batchItemFailures": [{"itemIdentifier": _number(r)} for r in bad]}
    # and each record was parsed exactly once, with the scorer's own stream model
    assert sorted(parses) == sorted(("EventRecord", _number(r)) for r in batch)
    # and the good profile's two events were scored together: one read and one write of its lead
    assert received == [["sc-1", "sc-2"]]
    assert stack.leads.leads_for(["u#u-sc-good"])
    # while the MODIFY and the REMOVE scored nothing
    assert not stack.leads.leads_for(["u#u-sc-modified", "u#u-sc-removed", "u#u-sc-bad"])


def test_a_batch_with_nothing_new_scores_nothing(stack: LocalStack, received: list[list[str]]) -> None:
    removed = _record("u-sc-expired", "sc-9", event_name="REMOVE")
    del removed["dynamodb"]["NewImage"]
    assert stack.invoke("scorer", {"Records": [removed]}) == {"batchItemFailures": []}
    assert received == []
