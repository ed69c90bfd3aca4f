"""History analytics at any scale: an S3 bucket for DynamoDB's native table exports (point-in-time recovery, which
the tables have, makes them possible), Glue tables over the exports' files and an Athena workgroup whose results
are encrypted. The same questions `nurture export` answers on DuckDB (docs/analytics.md)."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from aws_cdk import aws_s3 as s3
from constructs import Construct

from nurture import constants as c

GLUE_DATABASE = "nurture_analytics"
ATHENA_WORKGROUP = "nurture-analytics"
# `aws dynamodb export-table-to-point-in-time --s3-prefix` for each table; each export lands under
# `<prefix>/AWSDynamoDB/<export id>/data/*.json.gz` beside its manifests.
EXPORT_PREFIXES = {c.EVENTS_TABLE: "events", c.LEADS_TABLE: "leads"}
# Exports hold personal data (identify traits, emails): kept long enough for a monthly review, then deleted, so an
# erasure (`nurture forget`) reaches every copy within this time.
EXPORT_RETENTION = cdk.Duration.days(35)
RESULTS_RETENTION = cdk.Duration.days(35)
# DynamoDB JSON: one `{"Item": {...}}` a line; the OpenX SerDe matches names case-insensitively (Item, S, SS).
_ATTRIBUTES = {
    c.EVENTS_TABLE: {
        c.EVENTS_PK: "struct<s:string>",
        c.EVENTS_SK: "struct<s:string>",
        "type": "struct<s:string>",
        "received_at": "struct<s:string>",
        "message": "struct<s:string>",
    },
    c.LEADS_TABLE: {
        c.LEADS_PK: "struct<s:string>",
        c.LEADS_SK: "struct<s:string>",
        "lead": "struct<s:string>",
        "profiles": "struct<ss:array<string>>",
    },
}
GLUE_TABLES = {c.EVENTS_TABLE: "events_export", c.LEADS_TABLE: "leads_export"}


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


class Analytics(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, access_logs: s3.IBucket) -> None:
        super().__init__(scope, construct_id)
        self.exports_bucket = _private_bucket(
            self,
            "Exports",
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix="analytics-exports/",
            lifecycle_rules=[s3.LifecycleRule(expiration=EXPORT_RETENTION)],
        )
        self.results_bucket = _private_bucket(
            self,
            "Results",
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix="analytics-results/",
            lifecycle_rules=[s3.LifecycleRule(expiration=RESULTS_RETENTION)],
        )
        account = cdk.Stack.of(self).account
        self.database = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=account,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=GLUE_DATABASE, description="nurture: DynamoDB exports of the events and leads tables"
            ),
        )
        self.tables = {table: self._export_table(table, glue_name, account) for table, glue_name in GLUE_TABLES.items()}
        self.workgroup = athena.CfnWorkGroup(
            self,
            "WorkGroup",
            name=ATHENA_WORKGROUP,
            description="nurture history analytics (docs/analytics.md)",
            recursive_delete_option=True,
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True,  # a client cannot send results elsewhere, or unencrypted
                publish_cloud_watch_metrics_enabled=True,
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=self.results_bucket.s3_url_for_object("results/"),
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_S3"
                    ),
                ),
            ),
        )
        cdk.CfnOutput(
            scope,
            "AnalyticsExportBucketName",
            value=self.exports_bucket.bucket_name,
            description="`aws dynamodb export-table-to-point-in-time --s3-bucket` (docs/analytics.md)",
        )
        cdk.CfnOutput(scope, "AthenaWorkGroupName", value=ATHENA_WORKGROUP)
        cdk.CfnOutput(scope, "GlueDatabaseName", value=GLUE_DATABASE)

    def _export_table(self, table: str, glue_name: str, account: str) -> glue.CfnTable:
        """A Glue table over one DynamoDB table's exports. Each export is a partition named by its export id
        (partition projection, injected): a query reads the export it names (`WHERE export_id = '...'`), never
        the manifests beside the data, nor two exports at once."""
        prefix = EXPORT_PREFIXES[table]
        item = ",".join(f"{name}:{kind}" for name, kind in _ATTRIBUTES[table].items())
        location = f"s3://{self.exports_bucket.bucket_name}/{prefix}/AWSDynamoDB/"
        glue_table = glue.CfnTable(
            self,
            f"{prefix.title()}Table",
            catalog_id=account,
            database_name=GLUE_DATABASE,
            table_input=glue.CfnTable.TableInputProperty(
                name=glue_name,
                description=f"DynamoDB exports of {table} (DynamoDB JSON, gzip)",
                table_type="EXTERNAL_TABLE",
                parameters={
                    "classification": "json",
                    "compressionType": "gzip",
                    "projection.enabled": "true",
                    "projection.export_id.type": "injected",
                    "storage.location.template": location + "${export_id}/data/",
                },
                partition_keys=[glue.CfnTable.ColumnProperty(name="export_id", type="string")],
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                    columns=[glue.CfnTable.ColumnProperty(name="item", type=f"struct<{item}>")],
                    location=location,
                    input_format="org.apache.hadoop.mapred.TextInputFormat",
                    output_format="org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
                    serde_info=glue.CfnTable.SerdeInfoProperty(
                        serialization_library="org.openx.data.jsonserde.JsonSerDe",
                        parameters={"ignore.malformed.json": "false"},
                    ),
                ),
            ),
        )
        glue_table.add_resource_dependency(self.database)
        return glue_table
