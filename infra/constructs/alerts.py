"""Sales alerts: the encrypted SNS topic for sales. Nothing publishes to it yet: the alerts Lambda that
turns `Sales Alert` bus events into SNS and Slack messages comes with the sales handoff (docs/infrastructure.md)."""

from __future__ import annotations

from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from nurture import constants as c

# SNS's AWS managed key: encryption at rest with no key policy to maintain. Publishers need no KMS grant,
# but CloudWatch alarms cannot publish to a topic under this key, so operational alarms stay off it.
SNS_MANAGED_KEY_ALIAS = "alias/aws/sns"


class Alerts(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(
            self,
            "Topic",
            topic_name=c.ALERTS_TOPIC,
            display_name="Nurture sales alerts",
            master_key=kms.Alias.from_alias_name(self, "SnsManagedKey", SNS_MANAGED_KEY_ALIAS),
            enforce_ssl=True,
        )
