"""Scoring: the scorer Lambda on the events table's stream, and the DLQ for records it gives up on."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs.content import Content
from infra.constructs.runtime import DLQ_RETENTION, NurtureFunction, private_queue
from infra.constructs.storage import Storage
from infra.nag import acknowledge
from nurture import constants as c

# The numbers live in nurture.constants, which `nurture local` plays Lambda's poller with.
STREAM_BATCH_SIZE = c.SCORER_BATCH_SIZE
STREAM_RETRY_ATTEMPTS = c.SCORER_RETRY_ATTEMPTS
# Past this age a failing record goes to the DLQ instead of holding up its shard: the event itself is
# safe in the events table, and the lead can be rebuilt from it.
STREAM_MAX_RECORD_AGE = cdk.Duration.seconds(c.SCORER_MAX_RECORD_AGE_SECONDS)


class Scoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        layer: lambda_.ILayerVersion,
        storage: Storage,
        content: Content,
        event_bus: events.IEventBus,
        send_queue: sqs.IQueue,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dlq = private_queue(self, "Dlq", c.SCORER_DLQ, retention_period=DLQ_RETENTION)
        acknowledge(
            self.dlq,
            "SQS3",
            "This queue is the scorer's dead-letter destination (an event source mapping on-failure "
            "destination, which cdk-nag does not recognise as a DLQ).",
        )
        self.handler = NurtureFunction(
            self,
            "Handler",
            name="scorer",
            description="Scores new events, moves leads between sequences and announces stage changes",
            layer=layer,
            timeout=cdk.Duration.seconds(60),
        )
        self.function = self.handler.function
        self.function.add_event_source(
            sources.DynamoEventSource(
                storage.events_table,
                starting_position=lambda_.StartingPosition.TRIM_HORIZON,
                batch_size=STREAM_BATCH_SIZE,
                bisect_batch_on_error=True,
                report_batch_item_failures=True,
                retry_attempts=STREAM_RETRY_ATTEMPTS,
                max_record_age=STREAM_MAX_RECORD_AGE,
                on_failure=sources.SqsDlq(self.dlq),
                # Events are written once; TTL expiry produces REMOVE records the scorer must not see.
                filters=[lambda_.FilterCriteria.filter({"eventName": lambda_.FilterRule.is_equal("INSERT")})],
            )
        )
        self._grant(storage, content, event_bus, send_queue)

    def _grant(self, storage: Storage, content: Content, event_bus: events.IEventBus, send_queue: sqs.IQueue) -> None:
        """What LeadService.receive does: resolve profile links (BatchGetItem), read and write the lead with
        a version condition (GetItem, PutItem, UpdateItem), fold a merged lead away (DeleteItem, in the
        same transaction), then publish its effects: sends to the queue, the rest to the bus. Reading a
        profile's events (Query) is the rebuild path."""
        leads = storage.leads_table.table_arn
        self.handler.grant(["dynamodb:Query"], [storage.events_table.table_arn])
        self.handler.grant(
            [
                "dynamodb:BatchGetItem",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
            ],
            [leads],
        )
        event_bus.grant_put_events_to(self.function)
        send_queue.grant_send_messages(self.function)
        content.grant_read(self.function, c.CONTENT_PROGRAMME_KEY)
