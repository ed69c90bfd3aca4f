"""The shared layer, built without Docker: aarch64 wheels for python3.12 plus the nurture package."""

from __future__ import annotations

import tomllib
from pathlib import Path

import aws_cdk as cdk
import pytest

from infra import paths
from infra.layer_bundling import (
    LayerBundling,
    cache_key,
    prune_runtime_provided,
    requirement_name,
    runtime_requirements,
)
from tests.infra.conftest import Synthesized
from tests.infra.support import logical_id

ELF_MAGIC = b"\x7fELF"
EM_AARCH64 = 183  # ELF e_machine of 64-bit ARM


@pytest.fixture(scope="module")
def layer_site(synth: Synthesized) -> Path:
    """The layer's `python/` directory as the synth staged it in the cloud assembly."""
    s3_key = synth.resources[logical_id(synth.stack.layer)]["Properties"]["Content"]["S3Key"]
    return synth.outdir / f"asset.{s3_key.removesuffix('.zip')}" / "python"


def test_layer_ships_aarch64_pydantic_core(layer_site: Path) -> None:
    binary = layer_site / "pydantic_core" / "_pydantic_core.cpython-312-aarch64-linux-gnu.so"

    header = binary.read_bytes()[:20]
    assert header[:4] == ELF_MAGIC
    assert int.from_bytes(header[18:20], "little") == EM_AARCH64


def test_layer_ships_the_nurture_package_as_it_is_in_the_repo_without_the_tools(layer_site: Path) -> None:
    shipped = {p.relative_to(layer_site / "nurture") for p in (layer_site / "nurture").rglob("*.py")}
    source = {p.relative_to(paths.NURTURE_PACKAGE_DIR) for p in paths.NURTURE_PACKAGE_DIR.rglob("*.py")}
    tools = {p for p in source if p.parts[0] == "tools"}

    assert tools, "the CLI and the local stack live in nurture/tools"
    assert shipped == source - tools
    assert not (layer_site / "nurture" / "tools").exists()
    assert (layer_site / "nurture" / "constants.py").read_bytes() == (
        paths.NURTURE_PACKAGE_DIR / "constants.py"
    ).read_bytes()
    # No bytecode from this machine's interpreter: only what the bundling compiled for Lambda's (test_cold_start.py)
    assert not [p for p in (layer_site / "nurture").rglob("*.pyc") if not p.name.endswith(".cpython-312.pyc")]


def test_layer_ships_powertools_with_tracing_and_leaves_the_aws_sdk_to_the_runtime(layer_site: Path) -> None:
    for provided_by_lambda in ("boto3", "botocore", "s3transfer", "urllib3", "dateutil"):
        assert not (layer_site / provided_by_lambda).exists(), provided_by_lambda
    for needed in (
        "aws_lambda_powertools",
        "aws_xray_sdk",
        "pydantic",
        "jinja2",
        "markdown_it",
        "css_inline",
        "yaml",
        "wcmatch",
    ):
        assert (layer_site / needed).is_dir(), needed


def test_runtime_requirements_are_the_project_dependencies_without_boto3() -> None:
    declared = tomllib.loads(paths.PYPROJECT.read_text())["project"]["dependencies"]

    requirements = runtime_requirements()

    assert {requirement_name(r) for r in requirements} == {requirement_name(r) for r in declared} - {"boto3"}
    assert set(requirements) <= set(declared)


def test_dependency_cache_is_keyed_by_the_dependency_list() -> None:
    assert cache_key(["a==1", "b==2"]) == cache_key(["b==2", "a==1"])
    assert cache_key(["a==1", "b==2"]) != cache_key(["a==1", "b==3"])


def _package(root: Path, version: int) -> Path:
    package = root / "nurture"
    (package / "__pycache__").mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(f"VERSION = {version}\n")
    (package / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"stale")
    (package / "tools").mkdir(exist_ok=True)
    (package / "tools" / "cli.py").write_text("")
    return package


def test_layer_bundling_reuses_cached_dependencies_and_copies_fresh_nurture_code(tmp_path: Path) -> None:
    # Given dependencies already in the cache (so nothing is downloaded) and the nurture package at version 1
    requirements = ["example==1.0"]
    cached = tmp_path / "cache" / cache_key(requirements)
    (cached / "example").mkdir(parents=True)
    (cached / "example" / "__init__.py").write_text("")
    (cached / ".complete").write_text("example==1.0\n")
    package = _package(tmp_path / "src", version=1)
    bundling = LayerBundling(
        requirements=requirements, package_dir=package, cache_root=tmp_path / "cache", bytecode_python=None
    )
    image = cdk.DockerImage.from_registry("unused")

    # When the layer is bundled, the package changes, and it is bundled again
    bundling.try_bundle(str(tmp_path / "first"), image=image)
    _package(tmp_path / "src", version=2)
    bundling.try_bundle(str(tmp_path / "second"), image=image)

    # Then each bundle has the cached dependencies and the package as it was at that moment, without bytecode
    for out, version in ((tmp_path / "first", 1), (tmp_path / "second", 2)):
        assert (out / "python" / "example" / "__init__.py").exists()
        assert (out / "python" / "nurture" / "__init__.py").read_text() == f"VERSION = {version}\n"
        assert not (out / "python" / "nurture" / "__pycache__").exists()
        assert not (out / "python" / "nurture" / "tools").exists()
        assert not (out / "python" / ".complete").exists()


def test_pruning_removes_the_aws_sdk_by_its_install_record(tmp_path: Path) -> None:
    # Given a site with botocore (pulled in by aws-xray-sdk) and pydantic
    for name, module in (("botocore", "botocore"), ("pydantic", "pydantic")):
        (tmp_path / module).mkdir()
        (tmp_path / module / "__init__.py").write_text("")
        dist_info = tmp_path / f"{module}-1.0.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        (dist_info / "RECORD").write_text(f"{module}/__init__.py,,\n{dist_info.name}/METADATA,,\n")

    # When the runtime-provided distributions are pruned
    prune_runtime_provided(tmp_path)

    # Then botocore is gone and pydantic stays
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pydantic", "pydantic-1.0.dist-info"]
