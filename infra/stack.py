"""The nurture engine on AWS: one stack composed of one construct per capability."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from constructs import Construct

from infra.constructs.alerts import Alerts
from infra.constructs.analytics import Analytics
from infra.constructs.bus import Bus
from infra.constructs.content import Content
from infra.constructs.content_check import ContentCheck
from infra.constructs.dispatch import Dispatch
from infra.constructs.email_events import EmailEvents
from infra.constructs.ingest import Ingest
from infra.constructs.monitoring import Monitoring
from infra.constructs.runtime import NurtureFunction, NurtureLayer
from infra.constructs.scoring import Scoring
from infra.constructs.snippet import Snippet
from infra.constructs.storage import Storage
from nurture import constants as c


class NurtureStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        from_address: str,
        allowed_origins: list[str],
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.layer = NurtureLayer(self, "Runtime").layer
        self.storage = Storage(self, "Storage")
        self.content = Content(self, "Content")
        self.bus = Bus(self, "Bus")
        self.alerts = Alerts(
            self, "Alerts", layer=self.layer, storage=self.storage, content=self.content, event_bus=self.bus.event_bus
        )
        self.ingest = Ingest(
            self,
            "Ingest",
            layer=self.layer,
            storage=self.storage,
            content=self.content,
            event_bus=self.bus.event_bus,
            allowed_origins=allowed_origins,
        )
        self.dispatch = Dispatch(
            self,
            "Dispatch",
            layer=self.layer,
            storage=self.storage,
            content=self.content,
            event_bus=self.bus.event_bus,
            from_address=from_address,
        )
        self.scoring = Scoring(
            self,
            "Scoring",
            layer=self.layer,
            storage=self.storage,
            content=self.content,
            event_bus=self.bus.event_bus,
            send_queue=self.dispatch.queue,
        )
        # The API verifies unsubscribe links (the sender, which signs them, is granted in Dispatch).
        self.dispatch.unsubscribe_signing_key.grant_read(self.ingest.function)
        self.content_check = ContentCheck(self, "ContentCheck", layer=self.layer, content=self.content)
        self.snippet = Snippet(self, "Snippet", content=self.content)  # nurture.js for websites, via CloudFront
        # DynamoDB exports to S3, Glue tables and an Athena workgroup over them (docs/analytics.md).
        self.analytics = Analytics(self, "Analytics", access_logs=self.content.access_logs_bucket)
        self.email_events = EmailEvents(
            self,
            "EmailEvents",
            layer=self.layer,
            storage=self.storage,
            content=self.content,
            configuration_set=self.dispatch.configuration_set,
        )
        # The sender tells operations, once per email version, when an email does not render for a lead.
        operations_topic = self.content_check.topic.topic_arn
        self.dispatch.sender.function.add_environment(c.ENV_OPERATIONS_TOPIC_ARN, operations_topic)
        self.dispatch.sender.grant(["sns:Publish"], [operations_topic])
        self.functions: dict[str, NurtureFunction] = {
            "ingest": self.ingest.handler,
            "scorer": self.scoring.handler,
            "dispatcher": self.dispatch.dispatcher,
            "sender": self.dispatch.sender,
            "content_check": self.content_check.handler,
            "email_events": self.email_events.handler,
            "alerts": self.alerts.handler,
        }
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            layer=self.layer,
            dead_letter_queues={
                "Send": self.dispatch.dlq,
                "Scorer": self.scoring.dlq,
                "ContentCheck": self.content_check.dlq,
                "EmailEvents": self.email_events.dlq,
                "Alerts": self.alerts.dlq,
            },
            functions={name.title().replace("_", ""): fn.function for name, fn in self.functions.items()},
            stream_consumer=self.scoring.function,
            operations_topic=self.content_check.topic,
            configuration_set_name=self.dispatch.configuration_set.configuration_set_name,
            # `-c operations_email=ops@example.com`: alarms, the automatic pause of sends and content rejections.
            operations_email=self.node.try_get_context("operations_email"),
        )
        # The send guard (the automatic pause of sends) is made by Monitoring; it reads the shared settings too.
        self.functions["send_guard"] = self.monitoring.send_guard.handler
        self._share_settings(from_address, allowed_origins)
        cdk.CfnOutput(self, "ApiUrl", value=self.ingest.stage.url, description="Base URL of the v1 API")
        cdk.CfnOutput(self, "ContentBucketName", value=self.content.bucket.bucket_name)
        cdk.CfnOutput(
            self, "SnippetUrl", value=self.snippet.url, description="nurture.js for websites: docs/snippet.md"
        )
        cdk.CfnOutput(self, "WriteKeysSecretArn", value=self.ingest.write_keys.secret_arn)
        cdk.CfnOutput(self, "AlertsTopicArn", value=self.alerts.topic.topic_arn)
        cdk.CfnOutput(
            self,
            "OperationsTopicArn",
            value=self.content_check.topic.topic_arn,
            description="Subscribe marketers and operators: why an uploaded programme or email was not published",
        )
        cdk.CfnOutput(
            self,
            "AlarmsTopicArn",
            value=self.monitoring.topic.topic_arn,
            description="Subscribe operators: alarms and the automatic pause of sends (docs/operations.md)",
        )

    def _share_settings(self, from_address: str, allowed_origins: list[str]) -> None:
        """Every function reads the one settings model (`nurture.runtime.settings`), so each gets every name.
        Names and ARNs only: secret values stay in Secrets Manager."""
        environment = {
            c.ENV_EVENTS_TABLE: self.storage.events_table.table_name,
            c.ENV_LEADS_TABLE: self.storage.leads_table.table_name,
            c.ENV_IDEMPOTENCY_TABLE: self.storage.idempotency_table.table_name,
            c.ENV_CONTENT_BUCKET: self.content.bucket.bucket_name,
            c.ENV_EVENT_BUS: self.bus.event_bus.event_bus_name,
            c.ENV_SEND_QUEUE_URL: self.dispatch.queue.queue_url,
            c.ENV_SES_CONFIGURATION_SET: self.dispatch.configuration_set.configuration_set_name,
            c.ENV_FROM_ADDRESS: from_address,
            c.ENV_WRITE_KEYS_SECRET: self.ingest.write_keys.secret_arn,
            c.ENV_ALLOWED_ORIGINS: ",".join(allowed_origins),
            c.ENV_SIGNING_KEY_SECRET: self.dispatch.unsubscribe_signing_key.secret_arn,
            # Links in emails point at the API's own endpoint (`https://{api id}.execute-api.{region}.{suffix}`).
            c.ENV_PUBLIC_URL: self.ingest.api.api_endpoint,
            c.ENV_DUE_SHARDS: str(c.DUE_SHARDS),
        }
        for handler in self.functions.values():
            for key, value in environment.items():
                handler.function.add_environment(key, value)
