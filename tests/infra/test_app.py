"""How the app is run: `cdk synth` with the CDK CLI pinned in package.json, through cdk.json's app command.

What cdk.json and package.json are for is that `npx cdk synth` / `cdk deploy` works: the pinned CLI runs the app
with the project's Python, and reads the cloud assembly that the pinned aws-cdk-lib writes (a CLI older than the
library refuses it: "Cloud assembly schema version mismatch"). So the test does exactly that, and checks the CLI
deploys the very template the other infra tests inspect (the in-process app reads cdk.json's context too).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from infra import paths
from infra.app import STACK_NAME, allowed_origins
from tests.infra.conftest import ALLOWED_ORIGINS, FROM_ADDRESS, Synthesized

CDK = paths.REPO_ROOT / "node_modules" / ".bin" / "cdk"


def _cli_environment() -> dict[str, str]:
    """The shell `make synth` gives the CLI: the venv's python3 first on PATH, and nothing that reaches AWS."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_"))}
    env |= {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "AWS_EC2_METADATA_DISABLED": "true",  # no instance metadata lookups for a default account
        "CDK_DISABLE_CLI_TELEMETRY": "true",
        "CDK_DISABLE_VERSION_CHECK": "true",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    return env


def _cdk(*args: str) -> subprocess.CompletedProcess[str]:
    assert CDK.exists(), f"the pinned CDK CLI is not installed: run `npm ci` (make synth does) to get {CDK}"
    return subprocess.run(
        [str(CDK), *args, "--no-notices"],
        cwd=paths.REPO_ROOT,
        env=_cli_environment(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def cli_assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`cdk synth` by the pinned CLI, through cdk.json, with the context the session's in-process synth uses."""
    outdir = tmp_path_factory.mktemp("cli.cdk.out")
    done = _cdk(
        "synth",
        "--quiet",
        "--output",
        str(outdir),
        "--context",
        f"from_address={FROM_ADDRESS}",
        "--context",
        f"allowed_origins={','.join(ALLOWED_ORIGINS)}",
        # what the CLI adds on top of the app's own template (as the in-process app does not)
        "--no-path-metadata",
        "--no-asset-metadata",
        "--no-version-reporting",
    )
    assert done.returncode == 0, f"cdk synth failed:\n{done.stdout}\n{done.stderr}"
    return outdir


def _template(assembly: Path) -> dict[str, Any]:
    manifest = json.loads((assembly / "manifest.json").read_text())
    stack = manifest["artifacts"][STACK_NAME]
    assert stack["type"] == "aws:cloudformation:stack"
    template: dict[str, Any] = json.loads((assembly / stack["properties"]["templateFile"]).read_text())
    return template


def _differences(cli: Any, tested: Any, at: str = "") -> list[str]:
    """Where two templates differ, as JSON paths (empty when they are the same)."""
    if isinstance(cli, dict) and isinstance(tested, dict):
        return [
            difference
            for key in sorted(cli.keys() | tested.keys())
            for difference in (
                _differences(cli[key], tested[key], f"{at}/{key}")
                if key in cli and key in tested
                else [f"{at}/{key} only in the {'CLI' if key in cli else 'tested'} template"]
            )
        ]
    return [] if cli == tested else [f"{at}: {json.dumps(cli)[:200]} != {json.dumps(tested)[:200]}"]


def test_the_pinned_cli_is_the_installed_one() -> None:
    pinned = json.loads((paths.REPO_ROOT / "package.json").read_text())["devDependencies"]["aws-cdk"]
    version = _cdk("--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.split()[0] == pinned, "node_modules is stale: run `npm ci`"


def test_cdk_synth_through_cdk_json_deploys_the_template_the_tests_inspect(
    cli_assembly: Path, synth: Synthesized
) -> None:
    # The CLI ran cdk.json's app command with the venv's Python and accepted the assembly it wrote
    template = _template(cli_assembly)
    # and it is the template every other infra test reads
    assert _differences(template, synth.json) == []


def test_the_pinned_cli_reads_the_assembly_of_the_pinned_library(synth: Synthesized) -> None:
    # The assembly aws-cdk-lib (pyproject.toml) wrote in-process is one the CLI (package.json) can deploy
    listed = _cdk("list", "--app", str(synth.outdir))
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == [STACK_NAME]


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
