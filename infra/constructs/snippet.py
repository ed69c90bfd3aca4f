"""The tracking snippet, nurture.js, served to websites over HTTPS by CloudFront from the content bucket's `public/`.

CloudFront reads the bucket through origin access control (OAC), and only objects under `public/`: the bucket stays
private (programme and emails are not public), and S3 website hosting, which needs a public bucket and speaks only
HTTP, is not used. Each deploy uploads the snippet with its content type and cache headers; browsers and CloudFront
re-read it within five minutes (its Cache-Control), so no invalidation (and no CloudFront permission) is needed.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3_deployment
from constructs import Construct

from infra import paths
from infra.constructs.content import ACCESS_LOG_RETENTION, Content
from infra.nag import acknowledge
from nurture import constants as c

SNIPPET_DIR = paths.NURTURE_PACKAGE_DIR / "static"


class Snippet(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, content: Content) -> None:
        super().__init__(scope, construct_id)
        bucket = content.bucket
        self.logs_bucket = s3.Bucket(
            self,
            "Logs",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            # CloudFront's standard logs are delivered with an ACL grant: the bucket must accept ACLs.
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            server_access_logs_bucket=content.access_logs_bucket,
            server_access_logs_prefix="snippet-logs/",
            lifecycle_rules=[s3.LifecycleRule(expiration=ACCESS_LOG_RETENTION)],
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        # The origin is the bucket by name only (imported), so CloudFront's grant is not the whole bucket, which
        # `with_origin_access_control` would add: the statement below allows `public/` alone.
        origin_bucket = s3.Bucket.from_bucket_attributes(
            self, "Origin", bucket_arn=bucket.bucket_arn, bucket_name=bucket.bucket_name
        )
        headers = cloudfront.ResponseHeadersPolicy(
            self,
            "Headers",
            comment="nurture.js: no MIME sniffing, loadable by any site (even one that isolates itself), HTTPS only",
            security_headers_behavior=cloudfront.ResponseSecurityHeadersBehavior(
                content_type_options=cloudfront.ResponseHeadersContentTypeOptions(override=True),
                strict_transport_security=cloudfront.ResponseHeadersStrictTransportSecurity(
                    access_control_max_age=cdk.Duration.days(365), include_subdomains=True, override=True
                ),
            ),
            custom_headers_behavior=cloudfront.ResponseCustomHeadersBehavior(
                custom_headers=[
                    cloudfront.ResponseCustomHeader(
                        header="Cross-Origin-Resource-Policy", value="cross-origin", override=True
                    )
                ]
            ),
        )
        self.distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment="nurture: the tracking snippet (nurture.js)",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(
                    origin_bucket, origin_path="/" + c.SNIPPET_PREFIX.rstrip("/")
                ),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,  # honours the object's Cache-Control
                response_headers_policy=headers,
                compress=True,
            ),
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
            enable_logging=True,
            log_bucket=self.logs_bucket,
            log_file_prefix="cloudfront/",
        )
        bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudFrontReadsTheSnippetOnly",
                principals=[iam.ServicePrincipal("cloudfront.amazonaws.com")],
                actions=["s3:GetObject"],
                resources=[bucket.arn_for_objects(f"{c.SNIPPET_PREFIX}*")],
                conditions={"StringEquals": {"AWS:SourceArn": self.distribution.distribution_arn}},
            )
        )
        self.deployment = s3_deployment.BucketDeployment(
            self,
            "Upload",
            destination_bucket=bucket,
            destination_key_prefix=c.SNIPPET_PREFIX,
            sources=[s3_deployment.Source.asset(str(SNIPPET_DIR))],
            content_type=c.SNIPPET_CONTENT_TYPE,
            cache_control=[s3_deployment.CacheControl.from_string(c.SNIPPET_CACHE_CONTROL)],
            prune=True,  # public/ holds what this deployment ships, and nothing else
        )
        self.url = f"https://{self.distribution.distribution_domain_name}{c.SNIPPET_PATH}"
        self._acknowledge()

    def _acknowledge(self) -> None:
        cdk.Annotations.of(self).acknowledge_warning(
            "@aws-cdk/aws-cloudfront-origins:updateImportedBucketPolicyOac",
            "The bucket is imported on purpose: the statement added to the content bucket grants CloudFront public/*.",
        )
        acknowledge(
            self.distribution,
            "CFR1",
            "The snippet must load for visitors of the marketing site wherever they are; it serves one public file.",
        )
        acknowledge(
            self.distribution,
            "CFR2",
            "One public, cached, read-only JavaScript file from a private bucket: no dynamic origin for a WAF to "
            "guard. The ingest API it talks to is a separate endpoint with its own throttling.",
        )
        acknowledge(
            self.distribution,
            "CFR4",
            "Served on CloudFront's default *.cloudfront.net certificate, whose minimum TLS version CloudFront sets; "
            "a custom domain with an ACM certificate and TLSv1.2_2021 tightens it (docs/infrastructure.md).",
        )
