"""Creates the stack's resources in a stand-in AWS (moto), with the names and key schemas the CDK app uses."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from nurture import constants as c
from nurture.domain.email_feedback import record_pattern

REGION = "eu-west-1"
CONTENT_BUCKET = "nurture-content-local"
FROM_ADDRESS = "nurture@example.com"
WRITE_KEYS_SECRET = "nurture/write-keys"  # noqa: S105 - the name of the secret, not its value
BUS_TAP_QUEUE = "nurture-local-bus-tap"
# moto cannot invoke Lambda: the content bucket's S3 events (under incoming/) go to this queue, and the operations
# topic is subscribed by the other, so the local stack invokes the content check and shows what the topic received.
CONTENT_EVENTS_QUEUE = "nurture-local-content-events"
OPERATIONS_TAP_QUEUE = "nurture-local-operations-tap"
# The sales topic's SQS subscriber: what sales got (`GET /_local/alerts`).
ALERTS_TAP_QUEUE = "nurture-local-alerts-tap"
SIGNING_KEY_SECRET = "nurture/signing-key"  # noqa: S105 - the name of the secret, not its value
# Until `nurture local`'s HTTP server has its port (`LocalStack.serve_at`), links point at the default one.
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8080"


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


def content_event_pattern(bucket: str) -> dict[str, Any]:
    """The S3 events the content check gets: a file written or deleted under `incoming/` (the CDK app's rule too)."""
    return {
        "source": ["aws.s3"],
        "detail-type": list(c.CONTENT_EVENT_DETAIL_TYPES),
        "detail": {"bucket": {"name": [bucket]}, "object": {"key": [{"prefix": c.CONTENT_INCOMING_PREFIX}]}},
    }


def create(clients: Any, content_root: Path, write_key: str, slack_webhook: str = "") -> dict[str, str]:
    """Create every resource; returns the environment the handlers read their settings from. `slack_webhook`: where
    sales alerts are posted as Slack messages (empty: Slack is off)."""
    ddb = clients("dynamodb")
    for name, spec in TABLES.items():
        ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", **spec)
    ddb.update_time_to_live(
        TableName=c.EVENTS_TABLE, TimeToLiveSpecification={"Enabled": True, "AttributeName": c.EVENTS_TTL_ATTRIBUTE}
    )
    ddb.update_time_to_live(
        TableName=c.LEADS_TABLE, TimeToLiveSpecification={"Enabled": True, "AttributeName": c.LEADS_TTL_ATTRIBUTE}
    )

    s3 = clients("s3")
    s3.create_bucket(Bucket=CONTENT_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    # As the CDK app seeds it: the starter (linted by the tests) both live and as marketers' working copy in incoming/.
    for path in sorted(content_root.rglob("*")):
        if path.is_file() and path.suffix in (".yaml", ".md"):
            key = path.relative_to(content_root).as_posix()
            for prefix in ("", c.CONTENT_INCOMING_PREFIX):
                s3.put_object(Bucket=CONTENT_BUCKET, Key=prefix + key, Body=path.read_bytes())

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

    # The bucket sends its events to EventBridge; a rule on the default bus, as the CDK app's, picks the incoming/ ones.
    content_events = sqs.create_queue(QueueName=CONTENT_EVENTS_QUEUE)["QueueUrl"]
    content_events_arn = sqs.get_queue_attributes(QueueUrl=content_events, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    s3.put_bucket_notification_configuration(
        Bucket=CONTENT_BUCKET, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    clients("events").put_rule(
        Name="local-content-check", EventPattern=json.dumps(content_event_pattern(CONTENT_BUCKET))
    )
    clients("events").put_targets(
        Rule="local-content-check", Targets=[{"Id": "content-check", "Arn": content_events_arn}]
    )
    sns = clients("sns")
    operations_topic = sns.create_topic(Name=c.OPERATIONS_TOPIC)["TopicArn"]
    operations_tap = sqs.create_queue(QueueName=OPERATIONS_TAP_QUEUE)["QueueUrl"]
    operations_tap_arn = sqs.get_queue_attributes(QueueUrl=operations_tap, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=operations_topic, Protocol="sqs", Endpoint=operations_tap_arn)

    events = clients("events")
    events.create_event_bus(Name=c.EVENT_BUS)
    # moto cannot deliver to Lambda targets, so the local stack taps the bus into a queue and routes itself.
    tap = sqs.create_queue(QueueName=BUS_TAP_QUEUE)["QueueUrl"]
    tap_arn = sqs.get_queue_attributes(QueueUrl=tap, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="local-tap", EventBusName=c.EVENT_BUS, EventPattern=json.dumps({"source": [c.EVENT_SOURCE]}))
    events.put_targets(Rule="local-tap", EventBusName=c.EVENT_BUS, Targets=[{"Id": "tap", "Arn": tap_arn}])

    alerts_topic = _alerts(clients, sqs, events)

    # SES feedback as deployed: SES records on the default bus, a rule to the email-events queue, its DLQ by redrive.
    email_dlq = sqs.create_queue(QueueName=c.EMAIL_EVENTS_DLQ)["QueueUrl"]
    email_dlq_arn = sqs.get_queue_attributes(QueueUrl=email_dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    email_queue = sqs.create_queue(
        QueueName=c.EMAIL_EVENTS_QUEUE,
        Attributes={
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": email_dlq_arn, "maxReceiveCount": c.EMAIL_EVENTS_MAX_RECEIVE_COUNT}
            )
        },
    )["QueueUrl"]
    email_queue_arn = sqs.get_queue_attributes(QueueUrl=email_queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    clients("events").put_rule(
        Name="local-email-events", EventPattern=json.dumps(record_pattern(c.SES_CONFIGURATION_SET))
    )
    clients("events").put_targets(Rule="local-email-events", Targets=[{"Id": "email-events", "Arn": email_queue_arn}])

    ses = clients("sesv2")
    ses.create_email_identity(EmailIdentity=FROM_ADDRESS)
    ses.create_configuration_set(ConfigurationSetName=c.SES_CONFIGURATION_SET)

    clients("secretsmanager").create_secret(
        Name=WRITE_KEYS_SECRET, SecretString=json.dumps({"write_keys": [write_key]})
    )
    # A new random key each start, as CDK generates one per deployment: links from an earlier run do not verify.
    clients("secretsmanager").create_secret(
        Name=SIGNING_KEY_SECRET, SecretString=json.dumps({"signing_key": secrets.token_urlsafe(48)})
    )
    clients("secretsmanager").create_secret(
        Name=c.SLACK_WEBHOOK_SECRET, SecretString=json.dumps({"webhook_url": slack_webhook})
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
        c.ENV_SIGNING_KEY_SECRET: SIGNING_KEY_SECRET,
        c.ENV_PUBLIC_URL: DEFAULT_PUBLIC_URL,
        c.ENV_ALLOWED_ORIGINS: os.environ.get(c.ENV_ALLOWED_ORIGINS, ""),  # none unless the shell sets some
        c.ENV_DUE_SHARDS: str(c.DUE_SHARDS),
        c.ENV_OPERATIONS_TOPIC_ARN: operations_topic,
        c.ENV_ALERTS_TOPIC_ARN: alerts_topic,
        c.ENV_SLACK_WEBHOOK_SECRET: c.SLACK_WEBHOOK_SECRET,
    }


def _queue_arn(sqs: Any, url: str) -> str:
    return str(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])


def _alerts(clients: Any, sqs: Any, events: Any) -> str:
    """The sales topic (tapped by a queue, as an SQS subscriber would get it) and, as the CDK app has them, the alerts
    queue with its DLQ and the bus rule that fills it with `Sales Alert` events. Returns the topic's ARN."""
    sns = clients("sns")
    topic = sns.create_topic(Name=c.ALERTS_TOPIC)["TopicArn"]
    tap = sqs.create_queue(QueueName=ALERTS_TAP_QUEUE)["QueueUrl"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=_queue_arn(sqs, tap))
    dlq = sqs.create_queue(QueueName=c.ALERTS_DLQ)["QueueUrl"]
    redrive = {"deadLetterTargetArn": _queue_arn(sqs, dlq), "maxReceiveCount": c.ALERTS_MAX_RECEIVE_COUNT}
    queue = sqs.create_queue(
        QueueName=c.ALERTS_QUEUE, Attributes={"VisibilityTimeout": "30", "RedrivePolicy": json.dumps(redrive)}
    )["QueueUrl"]
    events.put_rule(Name="local-alerts", EventBusName=c.EVENT_BUS, EventPattern=json.dumps(alerts_event_pattern()))
    events.put_targets(
        Rule="local-alerts", EventBusName=c.EVENT_BUS, Targets=[{"Id": "alerts", "Arn": _queue_arn(sqs, queue)}]
    )
    return str(topic)


def alerts_event_pattern() -> dict[str, Any]:
    """The bus events the alerts function gets (the CDK app's rule too)."""
    return {"source": [c.EVENT_SOURCE], "detail-type": [c.SALES_ALERT_DETAIL_TYPE]}
