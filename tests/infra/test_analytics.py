"""History analytics in AWS: an encrypted, TLS-only, logged bucket for DynamoDB exports, Glue tables over the
export layout, and an Athena workgroup that keeps its results encrypted where it says."""

from __future__ import annotations

from typing import Any

from infra.constructs.analytics import ATHENA_WORKGROUP, EXPORT_PREFIXES, GLUE_DATABASE, GLUE_TABLES
from infra.stack import NurtureStack
from nurture import constants as c
from tests.infra.support import logical_id


def _of_type(resources: dict[str, Any], kind: str) -> list[Any]:
    return [r["Properties"] for r in resources.values() if r["Type"] == kind]


def _bucket(resources: dict[str, Any], bucket: Any) -> Any:
    return resources[logical_id(bucket)]["Properties"]


def test_the_tables_can_be_exported_because_they_keep_point_in_time_recovery(resources: dict[str, Any]) -> None:
    tables = {t["TableName"]: t for t in _of_type(resources, "AWS::DynamoDB::Table")}
    for name in (c.EVENTS_TABLE, c.LEADS_TABLE):
        assert tables[name]["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_the_export_and_results_buckets_are_private_encrypted_logged_and_expire(
    resources: dict[str, Any], stack: NurtureStack
) -> None:
    for bucket in (stack.analytics.exports_bucket, stack.analytics.results_bucket):
        props = _bucket(resources, bucket)
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [
            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
        ]
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        assert props["LoggingConfiguration"]["DestinationBucketName"] == {
            "Ref": logical_id(stack.content.access_logs_bucket)
        }
        # personal data leaves with the exports: nothing outlives a monthly review by long
        [rule] = props["LifecycleConfiguration"]["Rules"]
        assert rule["ExpirationInDays"] <= 35


def test_the_buckets_refuse_plain_http(resources: dict[str, Any], stack: NurtureStack) -> None:
    policies = _of_type(resources, "AWS::S3::BucketPolicy")
    for bucket in (stack.analytics.exports_bucket, stack.analytics.results_bucket):
        [policy] = [p for p in policies if p["Bucket"] == {"Ref": logical_id(bucket)}]
        denies = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
        assert any(s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in denies)


def test_glue_tables_read_one_export_of_each_table_in_dynamodb_json(resources: dict[str, Any]) -> None:
    [database] = _of_type(resources, "AWS::Glue::Database")
    assert database["DatabaseInput"]["Name"] == GLUE_DATABASE
    tables = {t["TableInput"]["Name"]: t["TableInput"] for t in _of_type(resources, "AWS::Glue::Table")}
    assert set(tables) == set(GLUE_TABLES.values())
    for dynamodb_table, glue_name in GLUE_TABLES.items():
        table = tables[glue_name]
        template = table["Parameters"]["storage.location.template"]
        # Fn::Join of the bucket name: the data files of the export the query names, never its manifests
        joined = "".join(p if isinstance(p, str) else "<bucket>" for p in template["Fn::Join"][1])
        assert joined == f"s3://<bucket>/{EXPORT_PREFIXES[dynamodb_table]}/AWSDynamoDB/${{export_id}}/data/"
        assert table["Parameters"]["projection.export_id.type"] == "injected"
        assert table["PartitionKeys"] == [{"Name": "export_id", "Type": "string"}]
        [column] = table["StorageDescriptor"]["Columns"]
        assert column["Name"] == "item"
        assert column["Type"].startswith("struct<pk:struct<s:string>,sk:struct<s:string>,")
        serde = table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"]
        assert serde == "org.openx.data.jsonserde.JsonSerDe"
    assert "message:struct<s:string>" in tables["events_export"]["StorageDescriptor"]["Columns"][0]["Type"]
    assert "profiles:struct<ss:array<string>>" in tables["leads_export"]["StorageDescriptor"]["Columns"][0]["Type"]


def test_the_athena_workgroup_enforces_encrypted_results_in_its_bucket(
    resources: dict[str, Any], stack: NurtureStack
) -> None:
    [workgroup] = _of_type(resources, "AWS::Athena::WorkGroup")
    assert workgroup["Name"] == ATHENA_WORKGROUP
    configuration = workgroup["WorkGroupConfiguration"]
    assert configuration["EnforceWorkGroupConfiguration"] is True
    results = configuration["ResultConfiguration"]
    assert results["EncryptionConfiguration"] == {"EncryptionOption": "SSE_S3"}
    assert "Ref" in str(results["OutputLocation"])
    assert logical_id(stack.analytics.results_bucket) in str(results["OutputLocation"])


def test_the_stack_outputs_name_the_export_bucket_the_workgroup_and_the_database(synth: Any) -> None:
    outputs = synth.json["Outputs"]
    for name in ("AnalyticsExportBucketName", "AthenaWorkGroupName", "GlueDatabaseName"):
        assert name in outputs
