"""DynamoDB: the events table (source of truth), the leads table (projection) and powertools idempotency."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from nurture import constants as c

# Powertools' DynamoDBPersistenceLayer defaults (key_attr, expiry_attr): the handlers use the defaults.
IDEMPOTENCY_KEY_ATTRIBUTE = "id"
IDEMPOTENCY_TTL_ATTRIBUTE = "expiration"
# What powertools' DynamoDBPersistenceLayer calls.
IDEMPOTENCY_ACTIONS = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"]


def _string(name: str) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=name, type=dynamodb.AttributeType.STRING)


def _recoverable(table_name: str) -> dict[str, Any]:
    """Settings every nurture table shares: on-demand, encrypted with the AWS managed key, PITR."""
    return {
        "table_name": table_name,
        "billing_mode": dynamodb.BillingMode.PAY_PER_REQUEST,
        "encryption": dynamodb.TableEncryption.AWS_MANAGED,
        "point_in_time_recovery_specification": dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
    }


class Storage(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.events_table = dynamodb.Table(
            self,
            "Events",
            partition_key=_string(c.EVENTS_PK),
            sort_key=_string(c.EVENTS_SK),
            stream=dynamodb.StreamViewType.NEW_IMAGE,
            time_to_live_attribute=c.EVENTS_TTL_ATTRIBUTE,
            deletion_protection=True,
            removal_policy=cdk.RemovalPolicy.RETAIN,
            **_recoverable(c.EVENTS_TABLE),
        )
        self.leads_table = dynamodb.Table(
            self,
            "Leads",
            partition_key=_string(c.LEADS_PK),
            sort_key=_string(c.LEADS_SK),
            # Only the mail log's items (`MAIL#...`, docs/email-feedback.md) carry it: they expire after a month.
            time_to_live_attribute=c.LEADS_TTL_ATTRIBUTE,
            deletion_protection=True,
            removal_policy=cdk.RemovalPolicy.RETAIN,
            **_recoverable(c.LEADS_TABLE),
        )
        # Both indexes project keys only: the dispatcher and the email lookup read the lead item itself
        # (consistently) after the index, so projecting the whole lead would only double every lead write.
        self.leads_table.add_global_secondary_index(
            index_name=c.LEADS_BY_EMAIL_INDEX,
            partition_key=_string(c.LEADS_EMAIL_ATTRIBUTE),
            projection_type=dynamodb.ProjectionType.KEYS_ONLY,
        )
        self.leads_table.add_global_secondary_index(
            index_name=c.LEADS_DUE_INDEX,
            partition_key=_string(c.LEADS_DUE_SHARD_ATTRIBUTE),
            sort_key=_string(c.LEADS_DUE_AT_ATTRIBUTE),
            projection_type=dynamodb.ProjectionType.KEYS_ONLY,
        )
        self.idempotency_table = dynamodb.Table(
            self,
            "Idempotency",
            partition_key=_string(IDEMPOTENCY_KEY_ATTRIBUTE),
            time_to_live_attribute=IDEMPOTENCY_TTL_ATTRIBUTE,
            # Records expire within hours and are rebuilt by a retry: nothing to keep on stack deletion.
            removal_policy=cdk.RemovalPolicy.DESTROY,
            **_recoverable(c.IDEMPOTENCY_TABLE),
        )

    def leads_index_arn(self, index_name: str) -> str:
        return f"{self.leads_table.table_arn}/index/{index_name}"
