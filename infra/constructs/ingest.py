"""Ingestion: the public Segment-compatible HTTP API, its write keys, and the ingest Lambda."""

from __future__ import annotations

import json

import aws_cdk as cdk
import jsii
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.constructs.content import Content
from infra.constructs.runtime import LOG_RETENTION, NurtureFunction
from infra.constructs.storage import Storage
from infra.nag import acknowledge
from nurture import constants as c

TRACKING_PATHS = ("/v1/track", "/v1/page", "/v1/identify", "/v1/batch")
ADMIN_PATHS = ("/v1/leads", "/v1/leads/{lead_id}")
SALES_STATUS_PATH = "/v1/leads/{lead_id}/sales-status"
ERASE_PATH = "/v1/leads/{lead_id}"  # DELETE: erase the lead (GDPR)
# One-click unsubscribe (RFC 8058): GET shows a confirmation page, POST opts out; the signed token is the credential.
UNSUBSCRIBE_METHODS = (apigwv2.HttpMethod.GET, apigwv2.HttpMethod.POST)
# Stage-wide throttling: generous for a B2B site's tracking snippet, a ceiling against floods.
THROTTLE_RATE_PER_SECOND = 200
THROTTLE_BURST = 400
WRITE_KEY_LENGTH = 40
# HTTP API access log: one JSON line per request, without the caller's IP address (personal data).
ACCESS_LOG_FORMAT = {
    "requestId": "$context.requestId",
    "requestTime": "$context.requestTimeEpoch",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "latencyMs": "$context.responseLatency",
    "integrationLatencyMs": "$context.integrationLatency",
    "integrationError": "$context.integrationErrorMessage",
    "error": "$context.error.message",
    "authorizerError": "$context.authorizer.error",
}


@jsii.implements(apigwv2.IAccessLogSettings)
class _AccessLogSettings:
    """IAccessLogSettings is a jsii interface, not a struct: Python needs a class, not a dict."""

    def __init__(self, destination: apigwv2.IAccessLogDestination, log_format: apigw.AccessLogFormat) -> None:
        self._destination = destination
        self._format = log_format

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat:
        return self._format


class Ingest(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        layer: lambda_.ILayerVersion,
        storage: Storage,
        content: Content,
        event_bus: events.IEventBus,
        allowed_origins: list[str],
    ) -> None:
        super().__init__(scope, construct_id)
        self._create_write_keys()
        self.handler = NurtureFunction(
            self,
            "Handler",
            name="ingest",
            description="Accepts Segment track/page/identify/batch messages and serves the admin lead routes",
            layer=layer,
            timeout=cdk.Duration.seconds(10),
            # The public path: SnapStart resumes new environments from a snapshot taken after init (and after the
            # handler's before-snapshot hook has built the resolver and clients). API Gateway invokes the alias.
            snap_start=True,
        )
        self.function = self.handler.function
        self.alias = self.handler.published()
        self._grant(storage, content)
        self._grant_sales_feedback(storage, event_bus)
        self._create_api(allowed_origins)

    def _create_write_keys(self) -> None:
        # CloudFormation can generate a string but not a JSON list, so a generated seed becomes the first
        # write key through a dynamic reference: the template holds the reference, never the key.
        self.write_key_seed = secretsmanager.Secret(
            self,
            "WriteKeySeed",
            description="nurture: the generated first write key (copied into the write keys secret at creation)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=WRITE_KEY_LENGTH, exclude_punctuation=True
            ),
        )
        first_key = self.write_key_seed.secret_value.unsafe_unwrap()
        self.write_keys = secretsmanager.Secret(
            self,
            "WriteKeys",
            description='nurture tracking write keys: {"write_keys": [...]}; add a key, move the snippets, '
            "then remove the old one",
            secret_string_value=cdk.SecretValue.unsafe_plain_text(
                cdk.Fn.join("", ['{"write_keys": ["', first_key, '"]}'])
            ),
        )
        for secret, reason in (
            (
                self.write_key_seed,
                "Used once, when the write keys secret is created; nothing reads it afterwards.",
            ),
            (
                self.write_keys,
                "Write keys are embedded in customers' tracking snippets, so a scheduled rotation would break "
                "tracking; operators rotate by adding a key, updating the snippets, then removing the old key.",
            ),
        ):
            acknowledge(secret, "SMG4", reason)

    def _grant(self, storage: Storage, content: Content) -> None:
        """EventTable.put (a conditional PutItem); the admin routes: LeadTable.get, find_by_email (the
        by-email index), send_records (a Query on the table: each send's delivery), and the programme to
        explain a lead's scores; the write keys."""
        storage.events_table.grant(self.function, "dynamodb:PutItem")
        self.handler.grant(["dynamodb:GetItem"], [storage.leads_table.table_arn])
        self.handler.grant(["dynamodb:Query"], [storage.leads_index_arn(c.LEADS_BY_EMAIL_INDEX)])
        self.handler.grant(["dynamodb:Query"], [storage.leads_table.table_arn])
        content.grant_read(self.function, c.CONTENT_PROGRAMME_KEY)
        self.write_keys.grant_read(self.function)
        self._grant_erasure(storage)

    def _grant_sales_feedback(self, storage: Storage, event_bus: events.IEventBus) -> None:
        """`POST /v1/leads/{lead_id}/sales-status` (api/sales.py): `LeadService.apply` writes the lead at the version
        it read (a conditional PutItem) and clears the outbox it published (UpdateItem), only on a lead's own items
        (`LEAD#...`: never a profile link), and adds what it counts to the month's metrics (`METRICS#...`); the move
        to sales_engaged goes on the bus."""
        self.handler.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["dynamodb:PutItem", "dynamodb:UpdateItem"],
                resources=[storage.leads_table.table_arn],
                conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["LEAD#*", f"{c.METRICS_PK_PREFIX}*"]}},
            )
        )
        event_bus.grant_put_events_to(self.function)

    def _grant_erasure(self, storage: Storage) -> None:
        """`DELETE /v1/leads/{lead_id}` (pipeline/erase.py): the events of the lead's profiles (a Query, then
        BatchWriteItem deletes), its links and every item of its partition (DeleteItem, one by one: the API may
        delete leads but never write them), the links of its profiles (BatchGetItem, the re-created lead sweep),
        the sender's idempotency records of its emails (DeleteItem), and the anonymous monthly counts (UpdateItem,
        on that partition only)."""
        self.handler.grant(["dynamodb:Query", "dynamodb:BatchWriteItem"], [storage.events_table.table_arn])
        self.handler.grant(["dynamodb:DeleteItem", "dynamodb:BatchGetItem"], [storage.leads_table.table_arn])
        self.handler.grant(["dynamodb:DeleteItem"], [storage.idempotency_table.table_arn])
        self.handler.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["dynamodb:UpdateItem"],
                resources=[storage.leads_table.table_arn],
                conditions={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [c.LEADS_ERASURES_PK]}},
            )
        )

    def _create_api(self, allowed_origins: list[str]) -> None:
        self.api = apigwv2.HttpApi(
            self,
            "Api",
            api_name=c.SERVICE_NAME,
            description="nurture v1: Segment-compatible tracking (write key) and admin lead routes (IAM)",
            create_default_stage=False,
            cors_preflight=apigwv2.CorsPreflightOptions(
                allow_origins=allowed_origins,
                allow_methods=[apigwv2.CorsHttpMethod.POST, apigwv2.CorsHttpMethod.OPTIONS],
                allow_headers=["Content-Type", "Authorization", "X-Write-Key"],
                max_age=cdk.Duration.days(1),
            ),
        )
        self.access_logs = logs.LogGroup(
            self, "AccessLogs", retention=LOG_RETENTION, removal_policy=cdk.RemovalPolicy.DESTROY
        )
        self.stage = apigwv2.HttpStage(
            self,
            "Stage",
            http_api=self.api,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(rate_limit=THROTTLE_RATE_PER_SECOND, burst_limit=THROTTLE_BURST),
            access_log_settings=_AccessLogSettings(
                apigwv2.LogGroupLogDestination(self.access_logs),
                apigw.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FORMAT)),
            ),
        )
        integration = integrations.HttpLambdaIntegration("Ingest", self.alias)
        for path in TRACKING_PATHS:
            for route in self.api.add_routes(path=path, methods=[apigwv2.HttpMethod.POST], integration=integration):
                acknowledge(
                    route,
                    "APIG4",
                    "Public tracking route called from browsers: the ingest Lambda authenticates the Segment "
                    "write key (basic auth, X-Write-Key or writeKey) against Secrets Manager.",
                )
        for route in self.api.add_routes(
            path=c.UNSUBSCRIBE_PATH, methods=list(UNSUBSCRIBE_METHODS), integration=integration
        ):
            acknowledge(
                route,
                "APIG4",
                "Public one-click unsubscribe route (RFC 8058) opened from email clients: the ingest Lambda verifies "
                "the signed, expiring token in the link, which is its only credential.",
            )
        iam_authorizer = authorizers.HttpIamAuthorizer()
        for path in ADMIN_PATHS:
            self.api.add_routes(
                path=path, methods=[apigwv2.HttpMethod.GET], integration=integration, authorizer=iam_authorizer
            )
        # Sales feedback: what sales says of a lead, signed with IAM like the other admin routes.
        self.api.add_routes(
            path=SALES_STATUS_PATH,
            methods=[apigwv2.HttpMethod.POST],
            integration=integration,
            authorizer=iam_authorizer,
        )
        # Erasure (GDPR): an admin route like the others, signed with IAM.
        self.api.add_routes(
            path=ERASE_PATH, methods=[apigwv2.HttpMethod.DELETE], integration=integration, authorizer=iam_authorizer
        )
