"""How the app is run: cdk.json, the pinned CLI, and the context values it reads."""

from __future__ import annotations

import json

import pytest

from infra import paths
from infra.app import allowed_origins

CDK_CLI_VERSION = "2.1148.1"


def test_cdk_json_runs_the_app_module_with_the_active_python() -> None:
    cdk_json = json.loads((paths.REPO_ROOT / "cdk.json").read_text())

    assert cdk_json["app"] == "python3 -m infra.app"


def test_cdk_cli_is_pinned_to_a_version_that_reads_this_cloud_assembly() -> None:
    package = json.loads((paths.REPO_ROOT / "package.json").read_text())
    lock = json.loads((paths.REPO_ROOT / "package-lock.json").read_text())

    assert package["devDependencies"]["aws-cdk"] == CDK_CLI_VERSION
    assert lock["packages"]["node_modules/aws-cdk"]["version"] == CDK_CLI_VERSION


@pytest.mark.parametrize(
    ("context", "origins"),
    [
        (None, ["*"]),
        ("https://www.example.com", ["https://www.example.com"]),
        ("https://a.example, https://b.example", ["https://a.example", "https://b.example"]),
        (["https://a.example", "https://b.example"], ["https://a.example", "https://b.example"]),
    ],
)
def test_allowed_origins_come_from_a_context_string_or_list(context: object, origins: list[str]) -> None:
    assert allowed_origins(context) == origins


def test_empty_allowed_origins_are_refused() -> None:
    with pytest.raises(ValueError, match="allowed_origins"):
        allowed_origins(" , ")
