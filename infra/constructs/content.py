"""The content bucket marketers edit (programme.yaml and emails/), seeded from the repo's `content/`."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3_deployment
from constructs import Construct

from infra import paths
from infra.constructs.runtime import LOG_RETENTION
from infra.nag import acknowledge, arn_placeholder
from nurture import constants as c

ACCESS_LOG_RETENTION = cdk.Duration.days(90)
NONCURRENT_VERSION_RETENTION = cdk.Duration.days(365)


def _private_bucket(scope: Construct, construct_id: str, **props: Any) -> s3.Bucket:
    return s3.Bucket(
        scope,
        construct_id,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        encryption=s3.BucketEncryption.S3_MANAGED,
        enforce_ssl=True,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        removal_policy=cdk.RemovalPolicy.RETAIN,
        **props,
    )


class Content(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.access_logs_bucket = _private_bucket(
            self,
            "AccessLogs",
            lifecycle_rules=[s3.LifecycleRule(expiration=ACCESS_LOG_RETENTION)],
        )
        self.bucket = _private_bucket(
            self,
            "Bucket",
            versioned=True,
            server_access_logs_bucket=self.access_logs_bucket,
            server_access_logs_prefix="content/",
            # Versions are the undo history of marketers' edits; keep a year of it.
            lifecycle_rules=[s3.LifecycleRule(noncurrent_version_expiration=NONCURRENT_VERSION_RETENTION)],
        )
        self._seed_from_repo()

    def _seed_from_repo(self) -> None:
        """Upload `content/` on deploy, live and as marketers' working copy under `incoming/` (so the content check
        finds the copy equal to the live file and changes nothing; the repo's content is linted by the tests before
        it is deployed). No pruning: objects marketers add in S3 survive a deploy; the keys the repo ships are
        overwritten, and the bucket's versions keep what they replaced."""
        role = iam.Role(
            self,
            "SeedRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="nurture content seeding (BucketDeployment custom resource)",
        )
        log_group = logs.LogGroup(self, "SeedLogs", retention=LOG_RETENTION, removal_policy=cdk.RemovalPolicy.DESTROY)
        log_group.grant_write(role)
        for construct_id, prefix in (("Seed", None), ("SeedIncoming", c.CONTENT_INCOMING_PREFIX)):
            s3_deployment.BucketDeployment(
                self,
                construct_id,
                destination_bucket=self.bucket,
                destination_key_prefix=prefix,
                sources=[s3_deployment.Source.asset(str(paths.CONTENT_DIR))],
                prune=False,
                role=role,
                log_group=log_group,
            )
        self._acknowledge_seeding(role)

    def _acknowledge_seeding(self, role: iam.Role) -> None:
        """BucketDeployment's grants and handler are aws-cdk-lib's: they copy the seed at deploy time only."""
        copy = "BucketDeployment's own grant ({}) for the deploy-time copy of content/ into the bucket"
        for action in ("s3:GetObject*", "s3:GetBucket*", "s3:List*", "s3:DeleteObject*", "s3:Abort*"):
            acknowledge(role, "IAM5", copy.format(action), finding=f"Action::{action}")
        assets = f"cdk-{cdk.DefaultStackSynthesizer.DEFAULT_QUALIFIER}-assets-<AWS::AccountId>-<AWS::Region>"
        acknowledge(
            role,
            "IAM5",
            "Reads the zipped content/ asset from the CDK bootstrap assets bucket, whose keys are asset hashes.",
            finding=f"Resource::arn:<AWS::Partition>:s3:::{assets}/*",
        )
        acknowledge(
            role,
            "IAM5",
            "Writes every key of the seed (programme.yaml, emails/*) into the content bucket.",
            finding=f"Resource::{arn_placeholder(self.bucket)}/*",
        )
        # The handler is a singleton at the stack's root, created by aws-cdk-lib with the runtime it chooses.
        for child in cdk.Stack.of(self).node.children:
            if child.node.id.startswith("Custom::CDKBucketDeployment"):
                acknowledge(
                    child,
                    "L1",
                    "aws-cdk-lib picks the runtime of BucketDeployment's handler, which runs only during deploys.",
                )

    def grant_read(self, grantee: iam.IGrantable, *keys: str) -> None:
        """Allow s3:GetObject on exactly these object keys (or key patterns)."""
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["s3:GetObject"],
            resource_arns=[self.bucket.arn_for_objects(key) for key in keys],
        )

    def grant_list(self, grantee: iam.IGrantable, prefix: str) -> None:
        """Allow listing the keys under `prefix` only (so a missing object reads as 404, not 403)."""
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["s3:ListBucket"],
            resource_arns=[self.bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [prefix, f"{prefix}*"]}},
        )
