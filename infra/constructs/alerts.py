"""Sales alerts: `Sales Alert` bus events through a queue to the alerts Lambda, which assigns the lead's owner and
alerts sales on the encrypted SNS topic and in Slack (the webhook URL in Secrets Manager), and publishes
`Lead Qualified` on the bus for CRM connectors. An alert no channel could take after a few tries lands in the
alerts DLQ (docs/sales.md)."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs.content import Content
from infra.constructs.runtime import DLQ_RETENTION, NurtureFunction, private_queue
from infra.constructs.storage import IDEMPOTENCY_ACTIONS, Storage
from infra.nag import acknowledge
from nurture import constants as c

# SNS's AWS managed key: encryption at rest with no key policy to maintain. Publishers need no KMS grant,
# but CloudWatch alarms cannot publish to a topic under this key, so operational alarms stay off it.
SNS_MANAGED_KEY_ALIAS = "alias/aws/sns"
TIMEOUT = cdk.Duration.seconds(30)
# AWS's guidance for a Lambda-consumed queue: visibility of at least six times the function timeout.
QUEUE_VISIBILITY = cdk.Duration.seconds(6 * TIMEOUT.to_seconds())


class Alerts(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        layer: lambda_.ILayerVersion,
        storage: Storage,
        content: Content,
        event_bus: events.IEventBus,
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(
            self,
            "Topic",
            topic_name=c.ALERTS_TOPIC,
            display_name="Nurture sales alerts",
            master_key=kms.Alias.from_alias_name(self, "SnsManagedKey", SNS_MANAGED_KEY_ALIAS),
            enforce_ssl=True,
        )
        self.slack_webhook = secretsmanager.Secret(
            self,
            "SlackWebhook",
            secret_name=c.SLACK_WEBHOOK_SECRET,
            description='nurture: the Slack incoming-webhook URL for sales alerts, {"webhook_url": "https://..."}; '
            "empty: Slack off",
            secret_string_value=cdk.SecretValue.unsafe_plain_text('{"webhook_url": ""}'),
        )
        acknowledge(
            self.slack_webhook,
            "SMG4",
            "A Slack webhook URL is issued by Slack and cannot be rotated by a Lambda; the team replaces it by hand "
            "(docs/sales.md). The stack creates it empty, so no secret value is in the template.",
        )
        self.dlq = private_queue(self, "Dlq", c.ALERTS_DLQ, retention_period=DLQ_RETENTION)
        self.queue = private_queue(
            self,
            "Queue",
            c.ALERTS_QUEUE,
            visibility_timeout=QUEUE_VISIBILITY,
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dlq, max_receive_count=c.ALERTS_MAX_RECEIVE_COUNT),
        )
        events.Rule(
            self,
            "SalesAlerts",
            description=f"{c.SALES_ALERT_DETAIL_TYPE} events to the alerts function's queue",
            event_bus=event_bus,
            event_pattern=events.EventPattern(source=[c.EVENT_SOURCE], detail_type=[c.SALES_ALERT_DETAIL_TYPE]),
            targets=[targets.SqsQueue(self.queue, dead_letter_queue=self.dlq)],
        )
        self.handler = NurtureFunction(
            self,
            "Handler",
            name="alerts",
            description="Assigns a qualified lead's owner; alerts sales on SNS and Slack; publishes Lead Qualified",
            layer=layer,
            timeout=TIMEOUT,
        )
        self.function = self.handler.function
        self.function.add_event_source(
            sources.SqsEventSource(self.queue, batch_size=c.ALERTS_BATCH_SIZE, report_batch_item_failures=True)
        )
        self.function.add_environment(c.ENV_ALERTS_TOPIC_ARN, self.topic.topic_arn)
        self.function.add_environment(c.ENV_SLACK_WEBHOOK_SECRET, self.slack_webhook.secret_arn)
        self._grant(storage, content, event_bus)

    def _grant(self, storage: Storage, content: Content, event_bus: events.IEventBus) -> None:
        """What `SalesHandoffService` does: read the lead (GetItem), read or assign its owner (GetItem, a conditional
        PutItem) and take a round-robin turn (UpdateItem); keep each channel's delivery record (idempotency table);
        publish to the topic and the bus; read the Slack webhook URL and the programme."""
        self.handler.grant(
            ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"], [storage.leads_table.table_arn]
        )
        storage.idempotency_table.grant(self.function, *IDEMPOTENCY_ACTIONS)
        # Not `topic.grant_publish`: it adds KMS grants, which the SNS AWS-managed key does not need.
        self.handler.grant(["sns:Publish"], [self.topic.topic_arn])
        event_bus.grant_put_events_to(self.function)
        self.slack_webhook.grant_read(self.function)
        content.grant_read(self.function, c.CONTENT_PROGRAMME_KEY)
