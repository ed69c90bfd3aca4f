"""Dispatch and send: the scheduled dispatcher, the send queue and its DLQ, the sender, and SES settings."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_ses as ses
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs.content import Content
from infra.constructs.runtime import DLQ_RETENTION, NurtureFunction, private_queue
from infra.constructs.storage import IDEMPOTENCY_ACTIONS, Storage
from infra.nag import acknowledge, arn_placeholder
from nurture import constants as c

# A Monday backlog is ticked in parallel (pipeline/dispatch.py): 10,000 due leads take a few minutes at most, so the
# run may take most of the five-minute schedule. It stays under the schedule (ticks do not pile up; an overlap is
# safe anyway: every lead write is conditional) and under the outbox lease (OUTBOX_LEASE_SECONDS, 5 minutes), so a
# dispatcher that is merely slow never has its entries taken over. The dispatcher stops taking leads 15 s before.
DISPATCHER_TIMEOUT = cdk.Duration.minutes(4)
SENDER_TIMEOUT = cdk.Duration.seconds(30)
# AWS's guidance for a Lambda-consumed queue: visibility of at least six times the function timeout.
SEND_QUEUE_VISIBILITY = cdk.Duration.seconds(6 * SENDER_TIMEOUT.to_seconds())
SEND_MAX_RECEIVE_COUNT = c.SEND_MAX_RECEIVE_COUNT  # shared with `nurture local`'s send-queue poller
SEND_BATCH_SIZE = c.SEND_BATCH_SIZE
# Caps parallel senders, and so the SES send rate the sender can reach.
SENDER_MAX_CONCURRENCY = 5
SIGNING_KEY_LENGTH = 64


class Dispatch(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        layer: lambda_.ILayerVersion,
        storage: Storage,
        content: Content,
        event_bus: events.IEventBus,
        from_address: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.configuration_set = ses.ConfigurationSet(
            self,
            "ConfigurationSet",
            configuration_set_name=c.SES_CONFIGURATION_SET,
            reputation_metrics=True,
            sending_enabled=True,
            suppression_reasons=ses.SuppressionReasons.BOUNCES_AND_COMPLAINTS,
            tls_policy=ses.ConfigurationSetTlsPolicy.REQUIRE,
        )
        self.unsubscribe_signing_key = secretsmanager.Secret(
            self,
            "UnsubscribeSigningKey",
            description="nurture: HMAC key that signs one-click unsubscribe links (RFC 8058)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template="{}",  # noqa: S106 - an empty JSON template, not a password
                generate_string_key="signing_key",
                password_length=SIGNING_KEY_LENGTH,
                exclude_punctuation=True,
            ),
        )
        acknowledge(
            self.unsubscribe_signing_key,
            "SMG4",
            "Unsubscribe links already in inboxes must keep working; the key is rotated by hand once the "
            "verifier accepts the previous key too, not on a schedule that would break old links.",
        )
        self._create_send_queue()
        self._create_dispatcher(layer, storage, content, event_bus)
        self._create_sender(layer, storage, content, from_address)

    def _create_send_queue(self) -> None:
        self.dlq = private_queue(self, "SendDlq", c.SEND_DLQ, retention_period=DLQ_RETENTION)
        self.queue = private_queue(
            self,
            "SendQueue",
            c.SEND_QUEUE,
            visibility_timeout=SEND_QUEUE_VISIBILITY,
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dlq, max_receive_count=SEND_MAX_RECEIVE_COUNT),
        )

    def _create_dispatcher(
        self, layer: lambda_.ILayerVersion, storage: Storage, content: Content, event_bus: events.IEventBus
    ) -> None:
        self.dispatcher = NurtureFunction(
            self,
            "Dispatcher",
            name="dispatcher",
            description="Every few minutes, ticks only the leads that are due: queues their sends, applies timeouts",
            layer=layer,
            timeout=DISPATCHER_TIMEOUT,
        )
        fn = self.dispatcher.function
        # A failed tick is not retried: the leads stay due and the next tick picks them up.
        fn.configure_async_invoke(retry_attempts=0)
        events.Rule(
            self,
            "Schedule",
            description=f"nurture dispatcher tick, every {c.DISPATCH_SCHEDULE_MINUTES} minutes",
            schedule=events.Schedule.rate(cdk.Duration.minutes(c.DISPATCH_SCHEDULE_MINUTES)),
            targets=[targets.LambdaFunction(fn)],
        )
        # LeadTable.due queries the due index; LeadService.tick reads the lead, writes it back with a
        # version condition, publishes (sends to the queue, timeouts to the bus) and removes the outbox
        # entries it published (UpdateItem), taking over any whose writer died (their lease ran out).
        self.dispatcher.grant(["dynamodb:Query"], [storage.leads_index_arn(c.LEADS_DUE_INDEX)])
        self.dispatcher.grant(
            ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"], [storage.leads_table.table_arn]
        )
        self.queue.grant_send_messages(fn)
        event_bus.grant_put_events_to(fn)
        # The programme, and each email's front matter (its topics and personas choose a lead's next email).
        emails = f"{c.CONTENT_EMAILS_PREFIX}*"
        content.grant_read(fn, c.CONTENT_PROGRAMME_KEY, emails)
        content.grant_list(fn, c.CONTENT_EMAILS_PREFIX)
        acknowledge(
            self.dispatcher.role,
            "IAM5",
            "The dispatcher reads the front matter of any email marketers add under emails/ (topics and personas "
            "choose a lead's next email); reads are limited to that prefix.",
            finding=f"Resource::{arn_placeholder(content.bucket)}/{emails}",
        )

    def _create_sender(
        self, layer: lambda_.ILayerVersion, storage: Storage, content: Content, from_address: str
    ) -> None:
        self.sender = NurtureFunction(
            self,
            "Sender",
            name="sender",
            description="Renders and sends one nurture email per queued message, at most once per step",
            layer=layer,
            timeout=SENDER_TIMEOUT,
        )
        fn = self.sender.function
        fn.add_event_source(
            sources.SqsEventSource(
                self.queue,
                batch_size=SEND_BATCH_SIZE,
                report_batch_item_failures=True,
                max_concurrency=SENDER_MAX_CONCURRENCY,
            )
        )
        # deliver() reads the lead (GetItem) and records the send (PutItem); powertools keeps the
        # at-most-once record in the idempotency table.
        self.sender.grant(["dynamodb:GetItem", "dynamodb:PutItem"], [storage.leads_table.table_arn])
        # It counts each email it sent for the monthly review: ADD on the month's metrics items only.
        self.sender.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["dynamodb:UpdateItem"],
                resources=[storage.leads_table.table_arn],
                conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{c.METRICS_PK_PREFIX}*"]}},
            )
        )
        storage.idempotency_table.grant(fn, *IDEMPOTENCY_ACTIONS)
        # SES v2 SendEmail with raw MIME content (the List-Unsubscribe headers) is authorised as ses:SendRawEmail.
        self.sender.grant(["ses:SendEmail", "ses:SendRawEmail"], self._ses_resources(from_address))
        # It signs each email's unsubscribe link.
        self.unsubscribe_signing_key.grant_read(fn)
        emails = f"{c.CONTENT_EMAILS_PREFIX}*"
        content.grant_read(fn, emails)
        content.grant_list(fn, c.CONTENT_EMAILS_PREFIX)
        acknowledge(
            self.sender.role,
            "IAM5",
            "The sender renders any email marketers add under emails/; reads are limited to that prefix.",
            finding=f"Resource::{arn_placeholder(content.bucket)}/{emails}",
        )

    def _ses_resources(self, from_address: str) -> list[str]:
        """The configuration set and the sending identity: the address, or its verified domain."""
        stack = cdk.Stack.of(self)
        domain = from_address.rpartition("@")[2]
        return [
            stack.format_arn(
                service="ses",
                resource=resource,
                resource_name=name,
                arn_format=cdk.ArnFormat.SLASH_RESOURCE_NAME,
            )
            for resource, name in (
                ("configuration-set", c.SES_CONFIGURATION_SET),
                ("identity", from_address),
                ("identity", domain),
            )
        ]
