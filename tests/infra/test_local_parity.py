"""`nurture local` creates its tables from `nurture.tools.local.resources.TABLES`, and retries and dead-letters with
`nurture.constants`: they must be the deployed ones."""

from __future__ import annotations

from typing import Any

import pytest

from nurture import constants as c
from nurture.tools.local.resources import TABLES
from tests.infra.conftest import Synthesized


def _deployed(synth: Synthesized, name: str) -> dict[str, Any]:
    tables = [
        r["Properties"]
        for r in synth.resources.values()
        if r["Type"] == "AWS::DynamoDB::Table" and r["Properties"].get("TableName") == name
    ]
    assert len(tables) == 1, f"no single table named {name} in the template"
    return tables[0]


def _indexes(spec: dict[str, Any]) -> dict[str, tuple[Any, str]]:
    return {
        i["IndexName"]: (i["KeySchema"], i["Projection"]["ProjectionType"])
        for i in spec.get("GlobalSecondaryIndexes", [])
    }


@pytest.mark.parametrize("name", sorted(TABLES))
def test_the_local_table_has_the_deployed_keys_and_indexes(synth: Synthesized, name: str) -> None:
    local, deployed = TABLES[name], _deployed(synth, name)
    assert local["KeySchema"] == deployed["KeySchema"]
    assert sorted(map(str, local["AttributeDefinitions"])) == sorted(map(str, deployed["AttributeDefinitions"]))
    assert _indexes(local) == _indexes(deployed)
    local_stream = local.get("StreamSpecification", {}).get("StreamViewType")
    assert local_stream == deployed.get("StreamSpecification", {}).get("StreamViewType")


# --- failure handling: `nurture local` plays Lambda's pollers with nurture.constants, the deployed numbers ---
def _named_queue(synth: Synthesized, reference: dict[str, Any]) -> str | None:
    """The name of the queue a template reference (`Fn::GetAtt` of its Arn) points at; None for anything else."""
    logical_id = reference["Fn::GetAtt"][0]
    return synth.resources[logical_id]["Properties"].get("QueueName")


def _mappings(synth: Synthesized) -> list[dict[str, Any]]:
    return [r["Properties"] for r in synth.resources.values() if r["Type"] == "AWS::Lambda::EventSourceMapping"]


def test_the_scorer_is_retried_and_dead_lettered_with_the_numbers_the_local_stack_uses(synth: Synthesized) -> None:
    [stream] = [m for m in _mappings(synth) if "StartingPosition" in m]
    assert stream["BatchSize"] == c.SCORER_BATCH_SIZE
    assert stream["MaximumRetryAttempts"] == c.SCORER_RETRY_ATTEMPTS
    assert stream["MaximumRecordAgeInSeconds"] == c.SCORER_MAX_RECORD_AGE_SECONDS
    assert stream["BisectBatchOnFunctionError"] is True
    assert stream["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert _named_queue(synth, stream["DestinationConfig"]["OnFailure"]["Destination"]) == c.SCORER_DLQ


def test_the_send_queue_redrives_and_batches_with_the_numbers_the_local_stack_uses(synth: Synthesized) -> None:
    [queue] = [
        r["Properties"]
        for r in synth.resources.values()
        if r["Type"] == "AWS::SQS::Queue" and r["Properties"].get("QueueName") == c.SEND_QUEUE
    ]
    assert queue["RedrivePolicy"]["maxReceiveCount"] == c.SEND_MAX_RECEIVE_COUNT
    assert _named_queue(synth, queue["RedrivePolicy"]["deadLetterTargetArn"]) == c.SEND_DLQ
    [sends] = [m for m in _mappings(synth) if _named_queue(synth, m["EventSourceArn"]) == c.SEND_QUEUE]
    assert sends["BatchSize"] == c.SEND_BATCH_SIZE
    assert sends["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_the_local_stack_invokes_the_content_check_for_the_deployed_rule_s_events(synth: Synthesized) -> None:
    from nurture.tools.local.resources import CONTENT_BUCKET, content_event_pattern

    [rule] = [
        r["Properties"]
        for r in synth.resources.values()
        if r["Type"] == "AWS::Events::Rule" and r["Properties"].get("EventPattern", {}).get("source") == ["aws.s3"]
    ]
    deployed = rule["EventPattern"]
    local = content_event_pattern(CONTENT_BUCKET)
    assert {**deployed, "detail": {**deployed["detail"], "bucket": None}} == {
        **local,
        "detail": {**local["detail"], "bucket": None},
    }
