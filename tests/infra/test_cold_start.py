"""Cold starts on AWS (issue 12): SnapStart on the public ingest path, invoked through a published version's alias;
every function skips pydantic's plugin search; the layer ships bytecode compiled for Lambda's Python."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest

from infra.constructs.runtime import LIVE_ALIAS, RUNTIME
from infra.layer_bundling import (
    OPTIMISATION_LEVEL,
    PYTHON_VERSION,
    LayerBundling,
    cache_key,
    lambda_python,
)
from infra.stack import NurtureStack
from tests.infra.conftest import Synthesized
from tests.infra.support import logical_id

# The first Python runtime with SnapStart (python3.12, November 2024).
SNAPSTART_PYTHON = (3, 12)


def _functions(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: r["Properties"] for k, r in resources.items() if r["Type"] == "AWS::Lambda::Function"}


def test_snapstart_is_on_for_the_ingest_function_only(resources: dict[str, Any], stack: NurtureStack) -> None:
    functions = _functions(resources)
    ingest = functions[logical_id(stack.ingest.function)]

    assert ingest["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert ingest["Runtime"] == RUNTIME.name
    major, minor = RUNTIME.name.removeprefix("python").split(".")
    assert (int(major), int(minor)) >= SNAPSTART_PYTHON
    others = [name for name, props in functions.items() if props is not ingest and "SnapStart" in props]
    assert others == []


def test_api_gateway_invokes_the_ingest_functions_published_version_through_its_alias(
    resources: dict[str, Any], stack: NurtureStack
) -> None:
    # The alias points at the function's current published version (SnapStart never applies to $LATEST)
    alias = resources[logical_id(stack.ingest.alias)]
    version_id = alias["Properties"]["FunctionVersion"]["Fn::GetAtt"][0]
    version = resources[version_id]

    assert alias["Type"] == "AWS::Lambda::Alias"
    assert alias["Properties"]["Name"] == LIVE_ALIAS
    assert version["Type"] == "AWS::Lambda::Version"
    assert version["Properties"]["FunctionName"] == {"Ref": logical_id(stack.ingest.function)}
    # A replaced version is deleted, so that its snapshot is no longer cached (and charged)
    assert version["DeletionPolicy"] == "Delete"

    # Every API route's integration targets the alias, and API Gateway may invoke the alias only
    integrations = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::ApiGatewayV2::Integration"]
    assert integrations
    assert all(i["IntegrationUri"] == {"Ref": logical_id(stack.ingest.alias)} for i in integrations)
    invokers = [
        r["Properties"]["FunctionName"]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::Permission" and r["Properties"]["Principal"] == "apigateway.amazonaws.com"
    ]
    assert invokers
    assert all(f == {"Ref": logical_id(stack.ingest.alias)} for f in invokers)


def test_every_function_skips_pydantics_plugin_search(resources: dict[str, Any]) -> None:
    for name, props in _functions(resources).items():
        variables = props.get("Environment", {}).get("Variables", {})
        if "POWERTOOLS_SERVICE_NAME" in variables:  # a nurture function (not a CDK-provided custom resource)
            assert variables["PYDANTIC_DISABLE_PLUGINS"] == "__all__", name


def _pyc_flags(pyc: Path) -> int:
    """The PEP 552 flags word of a .pyc: bit 0 hash-based, bit 1 check the source."""
    return int.from_bytes(pyc.read_bytes()[4:8], "little")


@pytest.fixture(scope="module")
def layer_site(synth: Synthesized) -> Path:
    s3_key = synth.resources[logical_id(synth.stack.layer)]["Properties"]["Content"]["S3Key"]
    return synth.outdir / f"asset.{s3_key.removesuffix('.zip')}" / "python"


def test_the_layer_ships_bytecode_for_lambdas_python_used_without_checking_the_source(layer_site: Path) -> None:
    if lambda_python() is None:
        pytest.skip(f"no CPython {PYTHON_VERSION} on this machine: the layer ships sources only")
    tag = f"cpython-{PYTHON_VERSION.replace('.', '')}"
    suffix = f".{tag}.pyc" if OPTIMISATION_LEVEL == 0 else f".{tag}.opt-{OPTIMISATION_LEVEL}.pyc"

    for module in (
        "nurture/api/resolver.py",
        "nurture/domain/journey.py",
        "aws_lambda_powertools/logging/logger.py",
        "pydantic/main.py",
    ):
        source = layer_site / module
        pyc = source.parent / "__pycache__" / f"{source.stem}{suffix}"
        assert pyc.exists(), pyc
        assert _pyc_flags(pyc) == 0b01, pyc  # unchecked-hash: used as it is, whatever the zip did to timestamps
        # compiled as the file Lambda loads (tracebacks), not as the synth's staging copy: the same layer every synth
        assert f"/opt/python/{module}".encode() in pyc.read_bytes(), pyc


def test_bundling_compiles_the_package_and_the_cached_dependencies_with_the_given_interpreter(tmp_path: Path) -> None:
    # Given cached dependencies and a package, and this interpreter standing in for Lambda's
    requirements = ["example==1.0"]
    cached = tmp_path / "cache" / cache_key(requirements)
    (cached / "example").mkdir(parents=True)
    (cached / "example" / "__init__.py").write_text("X = 1\n")
    (cached / ".complete").write_text("example==1.0\n")
    package = tmp_path / "src" / "nurture"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("VERSION = 1\n")
    bundling = LayerBundling(
        requirements=requirements, package_dir=package, cache_root=tmp_path / "cache", bytecode_python=sys.executable
    )

    # When the layer is bundled
    bundling.try_bundle(str(tmp_path / "out"), image=cdk.DockerImage.from_registry("unused"))

    # Then both ship with unchecked-hash bytecode of this interpreter, and the cache's markers do not ship
    site = tmp_path / "out" / "python"
    for source in (site / "nurture" / "__init__.py", site / "example" / "__init__.py"):
        pyc = Path(importlib.util.cache_from_source(str(source), optimization=""))
        assert pyc.exists(), pyc
        assert _pyc_flags(pyc) == 0b01
    assert not list(site.glob(".bytecode-*"))
    assert not (site / ".complete").exists()
    assert list(cached.glob(".bytecode-*")), "the cache remembers it was compiled"
