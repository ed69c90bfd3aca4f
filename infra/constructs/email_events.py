"""SES feedback: the configuration set publishes what happens to each email (delivery, open, click, bounce, complaint,
reject) to the default EventBridge bus; a rule queues the records, and the email-events Lambda stores each as a
message on the lead (the stream scores it), flagging what looks like a link scanner.

EventBridge rather than SNS: an SNS destination needs a topic SES may publish to, and encryption at rest would then
need a customer-managed KMS key with a key policy for SES (the SNS AWS-managed key does not admit it); the default bus
needs neither, and the rule both filters this configuration set's records and retries into the DLQ. A queue between
the rule and the Lambda gives batches (a scanner's burst arrives together and is judged as a whole), partial batch
failures and a redrive to the DLQ.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_ses as ses
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs.content import Content
from infra.constructs.runtime import DLQ_RETENTION, NurtureFunction, private_queue
from infra.constructs.storage import Storage
from nurture import constants as c
from nurture.domain.email_feedback import CONFIGURATION_SET_TAG, DETAIL_TYPES, RECORD_SOURCE

TIMEOUT = cdk.Duration.seconds(30)
# AWS's guidance for a Lambda-consumed queue: visibility of at least six times the function timeout.
VISIBILITY = cdk.Duration.seconds(6 * TIMEOUT.to_seconds())
# A scanner clicks every link within a second or two: waiting this long for a batch puts the burst in one.
BATCHING_WINDOW = cdk.Duration.seconds(5)
MAX_CONCURRENCY = 5
# The rule's retries of a record the queue did not take, before it goes to the DLQ.
RULE_RETRY_ATTEMPTS = 8
RULE_MAX_EVENT_AGE = cdk.Duration.hours(6)
PUBLISHED_EVENTS = [
    ses.EmailSendingEvent.DELIVERY,
    ses.EmailSendingEvent.OPEN,
    ses.EmailSendingEvent.CLICK,
    ses.EmailSendingEvent.BOUNCE,
    ses.EmailSendingEvent.COMPLAINT,
    ses.EmailSendingEvent.REJECT,
]


class EmailEvents(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        layer: lambda_.ILayerVersion,
        storage: Storage,
        content: Content,
        configuration_set: ses.ConfigurationSet,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        default_bus = events.EventBus.from_event_bus_arn(
            self,
            "DefaultBus",
            stack.format_arn(service="events", resource="event-bus", resource_name="default"),
        )
        configuration_set.add_event_destination(
            "ToEventBridge", destination=ses.EventDestination.event_bus(default_bus), events=PUBLISHED_EVENTS
        )
        self.dlq = private_queue(self, "Dlq", c.EMAIL_EVENTS_DLQ, retention_period=DLQ_RETENTION)
        self.queue = private_queue(
            self,
            "Queue",
            c.EMAIL_EVENTS_QUEUE,
            visibility_timeout=VISIBILITY,
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dlq, max_receive_count=c.EMAIL_EVENTS_MAX_RECEIVE_COUNT),
        )
        self.rule = events.Rule(
            self,
            "Records",
            description="SES records (delivery, open, click, bounce, complaint, reject) of the nurture emails",
            event_bus=default_bus,
            # The pattern `nurture.domain.email_feedback.record_pattern` gives, which `nurture local` uses too.
            event_pattern=events.EventPattern(
                source=[RECORD_SOURCE],
                detail_type=list(DETAIL_TYPES.values()),
                detail={"mail": {"tags": {CONFIGURATION_SET_TAG: [c.SES_CONFIGURATION_SET]}}},
            ),
            targets=[
                targets.SqsQueue(
                    self.queue,
                    dead_letter_queue=self.dlq,
                    retry_attempts=RULE_RETRY_ATTEMPTS,
                    max_event_age=RULE_MAX_EVENT_AGE,
                )
            ],
        )
        self.handler = NurtureFunction(
            self,
            "Handler",
            name="email_events",
            description="Stores what SES reports about each email on its lead; flags link scanners' opens and clicks",
            layer=layer,
            timeout=TIMEOUT,
        )
        self.function = self.handler.function
        self.function.add_event_source(
            sources.SqsEventSource(
                self.queue,
                batch_size=c.EMAIL_EVENTS_BATCH_SIZE,
                max_batching_window=BATCHING_WINDOW,
                report_batch_item_failures=True,
                max_concurrency=MAX_CONCURRENCY,
            )
        )
        self._grant(storage, content)

    def _grant(self, storage: Storage, content: Content) -> None:
        """What `EmailFeedback` does: find the lead (GetItem; by email for an untagged email: the by-email index),
        read and note the email's delivery and clicks (Query, PutItem on the leads table), and store the message in
        the events table (a conditional PutItem)."""
        leads = storage.leads_table.table_arn
        self.handler.grant(["dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem"], [leads])
        self.handler.grant(["dynamodb:Query"], [storage.leads_index_arn(c.LEADS_BY_EMAIL_INDEX)])
        self.handler.grant(["dynamodb:PutItem"], [storage.events_table.table_arn])
        content.grant_read(self.function, c.CONTENT_PROGRAMME_KEY)
