"""The tracking snippet on AWS: CloudFront serves nurture.js over HTTPS from the content bucket's public/ prefix through
origin access control, reading nothing else of the bucket; the deploy uploads it with its content type and caching."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Template

from infra.stack import NurtureStack
from nurture import constants as c
from tests.infra.conftest import Synthesized
from tests.infra.support import as_list, logical_id, render


def _distribution(resources: dict[str, Any], stack: NurtureStack) -> dict[str, Any]:
    config: dict[str, Any] = resources[logical_id(stack.snippet.distribution)]["Properties"]["DistributionConfig"]
    return config


def test_cloudfront_reads_the_content_bucket_under_public_through_origin_access_control(
    resources: dict[str, Any], stack: NurtureStack
) -> None:
    [origin] = _distribution(resources, stack)["Origins"]

    assert origin["OriginPath"] == "/public"
    assert "OriginAccessControlId" in origin
    assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}  # OAC, not the legacy identity
    assert render(origin["DomainName"]).startswith(f"<{logical_id(stack.content.bucket)}>.s3.")
    [oac] = [r for r in resources.values() if r["Type"] == "AWS::CloudFront::OriginAccessControl"]
    assert oac["Properties"]["OriginAccessControlConfig"]["SigningBehavior"] == "always"


def test_the_content_bucket_lets_only_this_distribution_read_only_public_objects(
    resources: dict[str, Any], stack: NurtureStack
) -> None:
    policy = next(
        r["Properties"]["PolicyDocument"]
        for r in resources.values()
        if r["Type"] == "AWS::S3::BucketPolicy"
        and r["Properties"]["Bucket"] == {"Ref": logical_id(stack.content.bucket)}
    )
    cloudfront = [s for s in policy["Statement"] if s.get("Principal") == {"Service": "cloudfront.amazonaws.com"}]

    assert len(cloudfront) == 1
    [statement] = cloudfront
    assert (statement["Effect"], statement["Action"]) == ("Allow", "s3:GetObject")
    assert [render(r) for r in as_list(statement["Resource"])] == [
        f"<{logical_id(stack.content.bucket)}.Arn>/{c.SNIPPET_PREFIX}*"
    ]
    source = render(statement["Condition"]["StringEquals"]["AWS:SourceArn"])
    assert source.endswith(f":distribution/<{logical_id(stack.snippet.distribution)}>")


def test_the_content_bucket_stays_private(resources: dict[str, Any], stack: NurtureStack) -> None:
    block = resources[logical_id(stack.content.bucket)]["Properties"]["PublicAccessBlockConfiguration"]
    assert all(block.values())
    assert "WebsiteConfiguration" not in resources[logical_id(stack.content.bucket)]["Properties"]


def test_the_snippet_is_served_over_https_read_only_compressed_and_logged(
    resources: dict[str, Any], stack: NurtureStack
) -> None:
    config = _distribution(resources, stack)
    behaviour = config["DefaultCacheBehavior"]

    assert behaviour["ViewerProtocolPolicy"] == "redirect-to-https"
    assert behaviour["AllowedMethods"] == ["GET", "HEAD"]
    assert behaviour["Compress"] is True
    assert render(config["Logging"]["Bucket"]) == f"<{logical_id(stack.snippet.logs_bucket)}.RegionalDomainName>"


def test_responses_carry_nosniff_hsts_and_a_cross_origin_resource_policy(
    resources: dict[str, Any], stack: NurtureStack
) -> None:
    policy_id = _distribution(resources, stack)["DefaultCacheBehavior"]["ResponseHeadersPolicyId"]["Ref"]
    config = resources[policy_id]["Properties"]["ResponseHeadersPolicyConfig"]

    assert config["SecurityHeadersConfig"]["ContentTypeOptions"] == {"Override": True}
    assert config["SecurityHeadersConfig"]["StrictTransportSecurity"]["Override"] is True
    assert config["CustomHeadersConfig"]["Items"] == [
        {"Header": "Cross-Origin-Resource-Policy", "Value": "cross-origin", "Override": True}
    ]


def test_the_deploy_uploads_the_snippet_under_public_with_its_content_type_and_caching(
    template: Template, stack: NurtureStack, synth: Synthesized
) -> None:
    template.has_resource_properties(
        "Custom::CDKBucketDeployment",
        {
            "DestinationBucketName": {"Ref": logical_id(stack.content.bucket)},
            "DestinationBucketKeyPrefix": c.SNIPPET_PREFIX,
            "Prune": True,
            "SystemMetadata": {"content-type": c.SNIPPET_CONTENT_TYPE, "cache-control": c.SNIPPET_CACHE_CONTROL},
        },
    )
    # And the uploaded asset is the snippet itself, alone
    deployment = next(
        r
        for r in synth.resources.values()
        if r["Type"] == "Custom::CDKBucketDeployment" and r["Properties"].get("DestinationBucketKeyPrefix") == "public/"
    )
    [key] = deployment["Properties"]["SourceObjectKeys"]
    asset = synth.outdir / f"asset.{key.removesuffix('.zip')}"
    assert sorted(p.name for p in asset.iterdir()) == [c.SNIPPET_FILE]


def test_the_stack_outputs_the_snippet_url(template: Template, stack: NurtureStack) -> None:
    template.has_output(
        "SnippetUrl",
        {
            "Value": {
                "Fn::Join": [
                    "",
                    ["https://", {"Fn::GetAtt": [logical_id(stack.snippet.distribution), "DomainName"]}, "/nurture.js"],
                ]
            }
        },
    )


def test_the_snippet_construct_leaves_no_synth_warning(synth: Synthesized) -> None:
    metadata = json.loads((synth.outdir / "NurtureStack.metadata.json").read_text())
    warnings = [
        (path, entry["data"])
        for path, entries in metadata.items()
        for entry in entries
        if path.startswith("/NurtureStack/Snippet") and entry["type"] == "aws:cdk:warning"
    ]
    assert warnings == []


def test_the_logs_bucket_is_private_encrypted_ssl_only_and_expires_logs(
    resources: dict[str, Any], stack: NurtureStack
) -> None:
    bucket = resources[logical_id(stack.snippet.logs_bucket)]["Properties"]

    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [
        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    ]
    assert bucket["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerPreferred"}]}  # log delivery
    [rule] = bucket["LifecycleConfiguration"]["Rules"]
    assert (rule["Status"], rule["ExpirationInDays"]) == ("Enabled", 90)
    policy = next(
        r["Properties"]["PolicyDocument"]
        for r in resources.values()
        if r["Type"] == "AWS::S3::BucketPolicy"
        and r["Properties"]["Bucket"] == {"Ref": logical_id(stack.snippet.logs_bucket)}
    )
    assert {"Bool": {"aws:SecureTransport": "false"}} in [s.get("Condition") for s in policy["Statement"]]


def test_the_snippet_is_not_shipped_in_the_lambda_layer(synth: Synthesized) -> None:
    s3_key = synth.resources[logical_id(synth.stack.layer)]["Properties"]["Content"]["S3Key"]
    package = synth.outdir / f"asset.{s3_key.removesuffix('.zip')}" / "python" / "nurture"

    assert (package / "constants.py").exists()
    assert not (package / "static").exists()
