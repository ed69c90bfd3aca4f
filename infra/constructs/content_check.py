"""Checked on upload: marketers write under `incoming/`; S3 tells EventBridge, a rule invokes the content check,
which publishes a clean file to the key the other Lambdas read, or reports why not on the operations topic.

EventBridge rather than a bucket notification to Lambda: a Lambda notification needs CDK's notifications custom
resource (a singleton handler with a managed policy and `s3:PutBucketNotification` on `*`, only to break the
bucket <-> function reference cycle), while EventBridge notifications are one bucket property; the rule filters the
prefix, retries and keeps what it cannot deliver in the DLQ.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.constructs.alerts import SNS_MANAGED_KEY_ALIAS
from infra.constructs.content import Content
from infra.constructs.runtime import DLQ_RETENTION, NurtureFunction, private_queue
from infra.nag import acknowledge, arn_placeholder
from nurture import constants as c

TIMEOUT = cdk.Duration.seconds(60)
# An upload not checked within this long is given up on and kept in the DLQ; the marketer uploads it again.
MAX_EVENT_AGE = cdk.Duration.hours(1)
RETRY_ATTEMPTS = 2


class ContentCheck(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, layer: lambda_.ILayerVersion, content: Content) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(
            self,
            "OperationsTopic",
            topic_name=c.OPERATIONS_TOPIC,
            display_name="Nurture operations",
            master_key=kms.Alias.from_alias_name(self, "SnsManagedKey", SNS_MANAGED_KEY_ALIAS),
            enforce_ssl=True,
        )
        self.dlq = private_queue(self, "Dlq", c.CONTENT_CHECK_DLQ, retention_period=DLQ_RETENTION)
        acknowledge(
            self.dlq,
            "SQS3",
            "This queue is the content check's dead-letter destination (the EventBridge target's DLQ and the "
            "function's on-failure destination, which cdk-nag does not recognise as a DLQ).",
        )
        self.handler = NurtureFunction(
            self,
            "Handler",
            name="content_check",
            description="Checks uploaded content; publishes what passes, reports what does not to operations",
            layer=layer,
            timeout=TIMEOUT,
        )
        self.function = self.handler.function
        self.function.add_environment(c.ENV_OPERATIONS_TOPIC_ARN, self.topic.topic_arn)
        self.function.configure_async_invoke(
            retry_attempts=RETRY_ATTEMPTS, max_event_age=MAX_EVENT_AGE, on_failure=destinations.SqsDestination(self.dlq)
        )
        bucket = content.bucket.node.default_child
        assert isinstance(bucket, s3.CfnBucket)
        bucket.add_property_override("NotificationConfiguration.EventBridgeConfiguration.EventBridgeEnabled", True)
        self.rule = events.Rule(
            self,
            "Uploads",
            description="A file written or deleted under the content bucket's incoming/ prefix",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=list(c.CONTENT_EVENT_DETAIL_TYPES),
                detail={
                    "bucket": {"name": [content.bucket.bucket_name]},
                    "object": {"key": [{"prefix": c.CONTENT_INCOMING_PREFIX}]},
                },
            ),
            targets=[
                targets.LambdaFunction(
                    self.function,
                    dead_letter_queue=self.dlq,
                    retry_attempts=RETRY_ATTEMPTS,
                    max_event_age=MAX_EVENT_AGE,
                )
            ],
        )
        self._grant(content)

    def _grant(self, content: Content) -> None:
        """What `ContentCheck` does: read the uploaded file and the live folder (GetObject, ListBucket on the two
        prefixes), write or delete the live key that passed, and publish a rejection."""
        fn = self.function
        incoming = f"{c.CONTENT_INCOMING_PREFIX}*"
        emails = f"{c.CONTENT_EMAILS_PREFIX}*"
        content.grant_read(fn, incoming, c.CONTENT_PROGRAMME_KEY, emails)
        content.grant_list(fn, c.CONTENT_INCOMING_PREFIX)
        content.grant_list(fn, c.CONTENT_EMAILS_PREFIX)
        self.handler.grant(
            ["s3:PutObject", "s3:DeleteObject"],
            [content.bucket.arn_for_objects(c.CONTENT_PROGRAMME_KEY), content.bucket.arn_for_objects(emails)],
        )
        # Not `topic.grant_publish`: it adds KMS grants, which the SNS AWS-managed key does not need.
        self.handler.grant(["sns:Publish"], [self.topic.topic_arn])
        bucket = arn_placeholder(content.bucket)
        acknowledge(
            self.handler.role,
            "IAM5",
            "The content check reads any file marketers upload under incoming/; reads are limited to that prefix.",
            finding=f"Resource::{bucket}/{incoming}",
        )
        acknowledge(
            self.handler.role,
            "IAM5",
            "The content check reads the live emails to lint an upload with them, and publishes (or removes) one "
            "that passed; limited to the emails/ prefix.",
            finding=f"Resource::{bucket}/{emails}",
        )
