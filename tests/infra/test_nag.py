"""cdk-nag AwsSolutions: the stack is clean, and every acknowledged finding is narrow and explained."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_sqs as sqs
from cdk_nag import AwsSolutionsChecks

from infra.app import STACK_NAME
from tests.infra.conftest import Synthesized

# Every finding the stack acknowledges, and where. A new acknowledgement is a reviewed change to this table.
ACKNOWLEDGED = {
    ("AwsSolutions-L1", "Ingest/Handler/Function"),
    ("AwsSolutions-L1", "Scoring/Handler/Function"),
    ("AwsSolutions-L1", "Dispatch/Dispatcher/Function"),
    ("AwsSolutions-L1", "Dispatch/Sender/Function"),
    ("AwsSolutions-IAM5[Resource::*]", "Ingest/Handler/Role"),
    ("AwsSolutions-IAM5[Resource::*]", "Scoring/Handler/Role"),
    ("AwsSolutions-IAM5[Resource::*]", "Dispatch/Dispatcher/Role"),
    ("AwsSolutions-IAM5[Resource::*]", "Dispatch/Sender/Role"),
    ("AwsSolutions-IAM5[Resource::<ContentBucket.Arn>/emails/*]", "Dispatch/Sender/Role"),
    ("AwsSolutions-IAM5[Resource::<ContentBucket.Arn>/emails/*]", "Dispatch/Dispatcher/Role"),
    ("AwsSolutions-APIG4", "Ingest/Api/POST--v1--track"),
    ("AwsSolutions-APIG4", "Ingest/Api/POST--v1--page"),
    ("AwsSolutions-APIG4", "Ingest/Api/POST--v1--identify"),
    ("AwsSolutions-APIG4", "Ingest/Api/POST--v1--batch"),
    ("AwsSolutions-APIG4", "Ingest/Api/GET--v1--unsubscribe"),
    ("AwsSolutions-APIG4", "Ingest/Api/POST--v1--unsubscribe"),
    ("AwsSolutions-SMG4", "Ingest/WriteKeySeed"),
    ("AwsSolutions-SMG4", "Ingest/WriteKeys"),
    ("AwsSolutions-SMG4", "Dispatch/UnsubscribeSigningKey"),
    ("AwsSolutions-SQS3", "Scoring/Dlq"),
    ("AwsSolutions-L1", "ContentCheck/Handler/Function"),
    ("AwsSolutions-IAM5[Resource::*]", "ContentCheck/Handler/Role"),
    ("AwsSolutions-IAM5[Resource::<ContentBucket.Arn>/incoming/*]", "ContentCheck/Handler/Role"),
    ("AwsSolutions-IAM5[Resource::<ContentBucket.Arn>/emails/*]", "ContentCheck/Handler/Role"),
    ("AwsSolutions-SQS3", "ContentCheck/Dlq"),
    ("AwsSolutions-L1", "Alerts/Handler/Function"),
    ("AwsSolutions-IAM5[Resource::*]", "Alerts/Handler/Role"),
    ("AwsSolutions-SMG4", "Alerts/SlackWebhook"),
    ("AwsSolutions-L1", "EmailEvents/Handler/Function"),
    ("AwsSolutions-IAM5[Resource::*]", "EmailEvents/Handler/Role"),
    ("AwsSolutions-L1", "Monitoring/SendGuard/Handler/Function"),
    ("AwsSolutions-IAM5[Resource::*]", "Monitoring/SendGuard/Handler/Role"),
    ("AwsSolutions-SQS3", "Monitoring/SendGuard/Dlq"),
    ("AwsSolutions-IAM5[Action::s3:GetObject*]", "Content/SeedRole"),
    ("AwsSolutions-IAM5[Action::s3:GetBucket*]", "Content/SeedRole"),
    ("AwsSolutions-IAM5[Action::s3:List*]", "Content/SeedRole"),
    ("AwsSolutions-IAM5[Action::s3:DeleteObject*]", "Content/SeedRole"),
    ("AwsSolutions-IAM5[Action::s3:Abort*]", "Content/SeedRole"),
    (
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-<AWS::AccountId>-<AWS::Region>/*]",
        "Content/SeedRole",
    ),
    ("AwsSolutions-IAM5[Resource::<ContentBucket.Arn>/*]", "Content/SeedRole"),
    ("AwsSolutions-L1", "Custom::CDKBucketDeployment"),
    ("AwsSolutions-CFR1", "Snippet/Distribution"),
    ("AwsSolutions-CFR2", "Snippet/Distribution"),
    ("AwsSolutions-CFR4", "Snippet/Distribution"),
}


def _aws_solutions_report(outdir: Path) -> Any:
    report = json.loads((outdir / "validation-report.json").read_text())
    [plugin] = [p for p in report["pluginReports"] if p["pluginName"] == "AwsSolutions"]
    return plugin


def _without_hashes(text: str) -> str:
    """Logical ids and singleton ids end in hashes; the table above names them without."""
    return re.sub(r"([A-Za-z]+)[0-9A-F]{8,}", r"\1", text)


def test_synth_is_clean_under_cdk_nag(synth: Synthesized) -> None:
    plugin = _aws_solutions_report(synth.outdir)

    findings = [
        f"{v['ruleName']} at {[c['constructPath'] for c in v['violatingConstructs']]}: {v['description']}"
        for v in plugin["violations"]
    ]
    assert findings == []
    assert plugin["conclusion"] == "success"


def test_acknowledged_findings_are_the_reviewed_ones(synth: Synthesized) -> None:
    plugin = _aws_solutions_report(synth.outdir)

    acknowledged = {
        (_without_hashes(v["ruleName"]), _without_hashes(v["acknowledgedAt"].removeprefix(f"{STACK_NAME}/")))
        for v in plugin["suppressedViolations"]
    }
    assert acknowledged == ACKNOWLEDGED


def test_every_acknowledgement_gives_its_reason_on_the_construct_it_is_about(synth: Synthesized) -> None:
    for violation in _aws_solutions_report(synth.outdir)["suppressedViolations"]:
        scope = violation["acknowledgedAt"]
        assert scope != STACK_NAME, violation["ruleName"]
        assert len(violation["reason"]) >= 40, violation["ruleName"]
        for construct in violation["violatingConstructs"]:
            assert construct["constructPath"].startswith(f"{scope}/"), (violation["ruleName"], scope)


def test_an_unacknowledged_finding_fails_the_synth(tmp_path: Path) -> None:
    # Given an app with the same cdk-nag plugin and a queue that accepts plain HTTP and has no DLQ
    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "Probe")
    sqs.Queue(stack, "PlainQueue", encryption=sqs.QueueEncryption.SQS_MANAGED)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))

    # When it is synthesized, then synthesis raises and names the rule
    with pytest.raises(RuntimeError, match=r"AwsSolutions-SQS4"):
        app.synth()
