"""The shared layer and the one way this app makes a Lambda function (`NurtureFunction`)."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra import paths
from infra.layer_bundling import LayerBundling
from infra.nag import acknowledge
from nurture import constants as c

RUNTIME = lambda_.Runtime.PYTHON_3_12
ARCHITECTURE = lambda_.Architecture.ARM_64
MEMORY_MB = 512
LOG_RETENTION = logs.RetentionDays.ONE_MONTH
HANDLER = "handler.handler"
LIVE_ALIAS = "live"
DLQ_RETENTION = cdk.Duration.days(14)


def private_queue(scope: Construct, construct_id: str, queue_name: str, **options: Any) -> sqs.Queue:
    """Every queue of the app: encrypted at rest (SQS-managed keys) and reachable over TLS only."""
    return sqs.Queue(
        scope,
        construct_id,
        queue_name=queue_name,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        **options,
    )


class NurtureLayer(Construct):
    """The `nurture` package and its runtime dependencies, built locally for python3.12 on arm64."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.layer = lambda_.LayerVersion(
            self,
            "Layer",
            description="nurture domain package with its runtime dependencies (python3.12, arm64)",
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            code=lambda_.Code.from_asset(
                str(paths.LAYER_DIR),
                # Hash the built output: the dependency list lives in pyproject.toml, outside the source.
                asset_hash_type=cdk.AssetHashType.OUTPUT,
                bundling=cdk.BundlingOptions(
                    image=cdk.DockerImage.from_registry("unused"),
                    local=LayerBundling(),
                ),
            ),
        )


class NurtureFunction(Construct):
    """A nurture Lambda: python3.12 on arm64, the shared layer, powertools settings, X-Ray, its own role
    (no managed policies) and its own log group with a retention."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        description: str,
        layer: lambda_.ILayerVersion,
        timeout: cdk.Duration,
        snap_start: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"nurture {name} Lambda",
        )
        self.log_group = logs.LogGroup(self, "Logs", retention=LOG_RETENTION, removal_policy=cdk.RemovalPolicy.DESTROY)
        self.log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self,
            "Function",
            description=description,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=HANDLER,
            code=lambda_.Code.from_asset(
                str(paths.FUNCTIONS_DIR / c.FUNCTION_DIRS[name]), exclude=["__pycache__", "*.pyc"]
            ),
            layers=[layer],
            role=self.role,
            log_group=self.log_group,
            memory_size=MEMORY_MB,
            timeout=timeout,
            tracing=lambda_.Tracing.ACTIVE,
            # SnapStart (python3.12+, published versions only): see `published()`. Each published version's snapshot
            # is cached, and charged, while the version exists: replaced versions are deleted, not retained.
            snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if snap_start else None,
            current_version_options=(
                lambda_.VersionOptions(removal_policy=cdk.RemovalPolicy.DESTROY) if snap_start else None
            ),
            environment={
                "POWERTOOLS_SERVICE_NAME": c.SERVICE_NAME,
                "POWERTOOLS_METRICS_NAMESPACE": c.METRICS_NAMESPACE,
                # The layer ships no pydantic plugin: skip pydantic's search of every installed distribution's entry
                # points when the first model is built (a cold-start cost: docs/benchmarks.md, "Cold import time").
                "PYDANTIC_DISABLE_PLUGINS": "__all__",
            },
        )
        acknowledge(
            self.function,
            "L1",
            "Pinned to python3.12: the shared layer's compiled wheels (pydantic-core, PyYAML) are built "
            "for cp312, and the runtime moves only together with the layer build.",
        )
        acknowledge(
            self.role,
            "IAM5",
            "Resource::* only for actions that support no resource-level permissions: X-Ray "
            "PutTraceSegments/PutTelemetryRecords (active tracing) and, on the stream consumer, "
            "dynamodb:ListStreams (added by the event source). tests/infra pins that list.",
            finding="Resource::*",
        )

    def published(self, alias_name: str = LIVE_ALIAS) -> lambda_.Alias:
        """An alias on the function's current published version: what callers must invoke for SnapStart to apply
        (`$LATEST` never runs from a snapshot). CDK publishes a new version whenever the function's code or
        configuration changes, and moves the alias to it."""
        # CDK warns that SnapStart applies to published versions only: this alias is that published version.
        cdk.Annotations.of(self.function).acknowledge_warning(
            "@aws-cdk/aws-lambda:snapStartRequirePublish", "invoked only through its alias on the current version"
        )
        return lambda_.Alias(self, "Alias", alias_name=alias_name, version=self.function.current_version)

    def grant(self, actions: list[str], resources: list[str]) -> None:
        """Allow exactly `actions` on exactly `resources` (no wildcards) to this function's role."""
        self.role.add_to_principal_policy(iam.PolicyStatement(actions=actions, resources=resources))
