"""Content, alerts and secrets: private encrypted storage for what marketers and operators own."""

from __future__ import annotations

from typing import Any

from aws_cdk.assertions import Match, Template

from infra.stack import NurtureStack
from nurture import constants as c
from tests.infra.support import logical_id, render


def test_content_bucket_is_private_encrypted_versioned_and_logged(
    resources: dict[str, Any], stack: NurtureStack
) -> None:
    bucket = resources[logical_id(stack.content.bucket)]["Properties"]

    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [
        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    ]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["LoggingConfiguration"]["DestinationBucketName"] == {
        "Ref": logical_id(stack.content.access_logs_bucket)
    }


def test_content_bucket_refuses_plain_http(template: Template, stack: NurtureStack) -> None:
    template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "Bucket": {"Ref": logical_id(stack.content.bucket)},
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})]
                )
            },
        },
    )


def test_content_folder_is_uploaded_without_deleting_marketers_files(template: Template, stack: NurtureStack) -> None:
    template.has_resource_properties(
        "Custom::CDKBucketDeployment",
        {"DestinationBucketName": {"Ref": logical_id(stack.content.bucket)}, "Prune": False},
    )


def test_alerts_topic_is_encrypted_and_refuses_plain_http(template: Template, stack: NurtureStack) -> None:
    template.has_resource_properties(
        "AWS::SNS::Topic", {"TopicName": c.ALERTS_TOPIC, "KmsMasterKeyId": Match.any_value()}
    )
    template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "Topics": [{"Ref": logical_id(stack.alerts.topic)}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})]
                )
            },
        },
    )


def test_write_keys_secret_starts_with_one_generated_key_in_a_list(
    resources: dict[str, Any], stack: NurtureStack
) -> None:
    seed = resources[logical_id(stack.ingest.write_key_seed)]["Properties"]
    write_keys = render(resources[logical_id(stack.ingest.write_keys)]["Properties"]["SecretString"])

    assert seed["GenerateSecretString"]["PasswordLength"] >= 32
    assert write_keys == (
        '{"write_keys": ["{{resolve:secretsmanager:'
        f"<{logical_id(stack.ingest.write_key_seed)}>"
        ':SecretString:::}}"]}'
    )


def test_unsubscribe_signing_key_is_generated(resources: dict[str, Any], stack: NurtureStack) -> None:
    secret = resources[logical_id(stack.dispatch.unsubscribe_signing_key)]["Properties"]

    assert secret["GenerateSecretString"]["GenerateStringKey"] == "signing_key"
    assert "SecretString" not in secret
