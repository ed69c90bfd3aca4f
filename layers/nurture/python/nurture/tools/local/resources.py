"""Creates the stack's resources in a stand-in AWS (moto), with the names and key schemas the CDK app uses."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from nurture import constants as c

REGION = "eu-west-1"
CONTENT_BUCKET = "nurture-content-local"
FROM_ADDRESS = "nurture@example.com"
WRITE_KEYS_SECRET = "nurture/write-keys"  # noqa: S105 - the name of the secret, not its value
BUS_TAP_QUEUE = "nurture-local-bus-tap"


def _strings(*names: str) -> list[dict[str, str]]:
    return [{"AttributeName": name, "AttributeType": "S"} for name in names]


def _keys(partition: str, sort: str | None = None) -> list[dict[str, str]]:
    keys = [{"AttributeName": partition, "KeyType": "HASH"}]
    return keys + ([{"AttributeName": sort, "KeyType": "RANGE"}] if sort else [])


TABLES: dict[str, dict[str, Any]] = {
    c.EVENTS_TABLE: {
        "KeySchema": _keys(c.EVENTS_PK, c.EVENTS_SK),
        "AttributeDefinitions": _strings(c.EVENTS_PK, c.EVENTS_SK),
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    },
    c.LEADS_TABLE: {
        "KeySchema": _keys(c.LEADS_PK, c.LEADS_SK),
        "AttributeDefinitions": _strings(
            c.LEADS_PK, c.LEADS_SK, c.LEADS_EMAIL_ATTRIBUTE, c.LEADS_DUE_SHARD_ATTRIBUTE, c.LEADS_DUE_AT_ATTRIBUTE
        ),
        "GlobalSecondaryIndexes": [
            {
                "IndexName": c.LEADS_BY_EMAIL_INDEX,
                "KeySchema": _keys(c.LEADS_EMAIL_ATTRIBUTE),
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
            {
                "IndexName": c.LEADS_DUE_INDEX,
                "KeySchema": _keys(c.LEADS_DUE_SHARD_ATTRIBUTE, c.LEADS_DUE_AT_ATTRIBUTE),
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
        ],
    },
    c.IDEMPOTENCY_TABLE: {"KeySchema": _keys("id"), "AttributeDefinitions": _strings("id")},
}


def create(clients: Any, content_root: Path, write_key: str) -> dict[str, str]:
    """Create every resource; returns the environment the handlers read their settings from."""
    ddb = clients("dynamodb")
    for name, spec in TABLES.items():
        ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", **spec)
    ddb.update_time_to_live(
        TableName=c.EVENTS_TABLE, TimeToLiveSpecification={"Enabled": True, "AttributeName": c.EVENTS_TTL_ATTRIBUTE}
    )

    s3 = clients("s3")
    s3.create_bucket(Bucket=CONTENT_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    for path in sorted(content_root.rglob("*")):
        if path.is_file() and path.suffix in (".yaml", ".md"):
            s3.put_object(Bucket=CONTENT_BUCKET, Key=path.relative_to(content_root).as_posix(), Body=path.read_bytes())

    sqs = clients("sqs")
    dlq = sqs.create_queue(QueueName=c.SEND_DLQ)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    send_queue = sqs.create_queue(
        QueueName=c.SEND_QUEUE,
        Attributes={
            "VisibilityTimeout": "30",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": c.SEND_MAX_RECEIVE_COUNT}),
        },
    )["QueueUrl"]
    # The scorer's on-failure destination: the local stack sends it what Lambda would about a discarded batch.
    sqs.create_queue(QueueName=c.SCORER_DLQ)

    events = clients("events")
    events.create_event_bus(Name=c.EVENT_BUS)
    # moto cannot deliver to Lambda targets, so the local stack taps the bus into a queue and routes itself.
    tap = sqs.create_queue(QueueName=BUS_TAP_QUEUE)["QueueUrl"]
    tap_arn = sqs.get_queue_attributes(QueueUrl=tap, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="local-tap", EventBusName=c.EVENT_BUS, EventPattern=json.dumps({"source": [c.EVENT_SOURCE]}))
    events.put_targets(Rule="local-tap", EventBusName=c.EVENT_BUS, Targets=[{"Id": "tap", "Arn": tap_arn}])

    ses = clients("sesv2")
    ses.create_email_identity(EmailIdentity=FROM_ADDRESS)
    ses.create_configuration_set(ConfigurationSetName=c.SES_CONFIGURATION_SET)

    clients("secretsmanager").create_secret(
        Name=WRITE_KEYS_SECRET, SecretString=json.dumps({"write_keys": [write_key]})
    )
    return {
        c.ENV_EVENTS_TABLE: c.EVENTS_TABLE,
        c.ENV_LEADS_TABLE: c.LEADS_TABLE,
        c.ENV_IDEMPOTENCY_TABLE: c.IDEMPOTENCY_TABLE,
        c.ENV_CONTENT_BUCKET: CONTENT_BUCKET,
        c.ENV_EVENT_BUS: c.EVENT_BUS,
        c.ENV_SEND_QUEUE_URL: send_queue,
        c.ENV_SES_CONFIGURATION_SET: c.SES_CONFIGURATION_SET,
        c.ENV_FROM_ADDRESS: FROM_ADDRESS,
        c.ENV_WRITE_KEYS_SECRET: WRITE_KEYS_SECRET,
        c.ENV_ALLOWED_ORIGINS: os.environ.get(c.ENV_ALLOWED_ORIGINS, ""),  # none unless the shell sets some
        c.ENV_DUE_SHARDS: str(c.DUE_SHARDS),
    }
