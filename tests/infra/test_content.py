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


def test_the_starter_content_is_deployed_live_and_as_the_incoming_working_copy(
    resources: dict[str, Any], stack: NurtureStack
) -> None:
    deployments = [r["Properties"] for r in resources.values() if r["Type"] == "Custom::CDKBucketDeployment"]
    prefixes = sorted(d.get("DestinationBucketKeyPrefix", "") for d in deployments)
    prefixes.remove(c.SNIPPET_PREFIX)  # the tracking snippet's own upload (tests/infra/test_snippet.py)
    # live at once (the tests lint it before a deploy); the copy equals it, so the content check changes nothing
    assert prefixes == ["", c.CONTENT_INCOMING_PREFIX]


def test_uploads_under_incoming_invoke_the_content_check(resources: dict[str, Any], stack: NurtureStack) -> None:
    bucket = resources[logical_id(stack.content.bucket)]["Properties"]
    assert bucket["NotificationConfiguration"] == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}
    rule = resources[logical_id(stack.content_check.rule)]["Properties"]
    assert rule["EventPattern"] == {
        "source": ["aws.s3"],
        "detail-type": list(c.CONTENT_EVENT_DETAIL_TYPES),
        "detail": {
            "bucket": {"name": [{"Ref": logical_id(stack.content.bucket)}]},
            "object": {"key": [{"prefix": c.CONTENT_INCOMING_PREFIX}]},
        },
    }
    [target] = rule["Targets"]
    assert logical_id(stack.content_check.function) in render(target["Arn"])
    assert logical_id(stack.content_check.dlq) in render(target["DeadLetterConfig"])
    [invoke_config] = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::EventInvokeConfig"
        and r["Properties"]["FunctionName"] == {"Ref": logical_id(stack.content_check.function)}
    ]
    assert logical_id(stack.content_check.dlq) in render(invoke_config["DestinationConfig"]["OnFailure"])


def test_rejections_go_to_an_encrypted_operations_topic_not_the_sales_one(
    template: Template, template_json: dict[str, Any], stack: NurtureStack
) -> None:
    template.has_resource_properties(
        "AWS::SNS::Topic", {"TopicName": c.OPERATIONS_TOPIC, "KmsMasterKeyId": Match.any_value()}
    )
    assert c.OPERATIONS_TOPIC != c.ALERTS_TOPIC
    variables = resources_of(template_json)[logical_id(stack.content_check.function)]["Properties"]["Environment"]
    assert variables["Variables"][c.ENV_OPERATIONS_TOPIC_ARN] == {"Ref": logical_id(stack.content_check.topic)}
    assert template_json["Outputs"]["OperationsTopicArn"]["Value"] == {"Ref": logical_id(stack.content_check.topic)}


def resources_of(template_json: dict[str, Any]) -> dict[str, Any]:
    resources: dict[str, Any] = template_json["Resources"]
    return resources


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
