"""Builds the shared Lambda layer without Docker.

Runtime dependencies come as manylinux aarch64 wheels for CPython 3.12 (pip's cross-platform install),
cached per dependency list; the `nurture` package is copied fresh on every synth.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import jsii

from infra import paths

PLATFORM = "manylinux2014_aarch64"
PYTHON_VERSION = "3.12"
IMPLEMENTATION = "cp"
# The Lambda Python runtime ships the AWS SDK and its dependencies. A second copy in /opt/python would
# shadow the runtime's and could pair a botocore with a boto3 it was not released with, so the SDK stack
# is neither requested (boto3) nor kept when another package pulls it in (aws-xray-sdk needs botocore).
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3"})
# Subpackages of `nurture` that only the CLI and the local stack use, and the tracking snippet (`static/`, which
# CloudFront serves from S3): never shipped to Lambda.
NOT_SHIPPED = ("tools", "static")
# Bump when the way the cache is built changes, so old caches are not reused.
CACHE_FORMAT = 1

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def canonical_name(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = _NAME.match(requirement)
    if match is None:
        raise ValueError(f"cannot read a distribution name from requirement {requirement!r}")
    return canonical_name(match.group(1))


def runtime_requirements(pyproject: Path = paths.PYPROJECT) -> list[str]:
    """[project].dependencies of pyproject.toml, without what the Lambda runtime already provides."""
    dependencies = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    return sorted(req for req in dependencies if requirement_name(req) not in RUNTIME_PROVIDED)


def cache_key(requirements: list[str]) -> str:
    recipe = {
        "format": CACHE_FORMAT,
        "requirements": sorted(requirements),
        "platform": PLATFORM,
        "python": PYTHON_VERSION,
        "implementation": IMPLEMENTATION,
        "pruned": sorted(RUNTIME_PROVIDED),
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def prune_runtime_provided(site: Path) -> None:
    """Remove distributions the runtime provides, file by file from their RECORD, and console scripts."""
    for dist_info in site.glob("*.dist-info"):
        metadata = (dist_info / "METADATA").read_text(encoding="utf-8", errors="replace")
        name = next((line[5:].strip() for line in metadata.splitlines() if line.startswith("Name:")), "")
        if canonical_name(name) not in RUNTIME_PROVIDED:
            continue
        for row in (dist_info / "RECORD").read_text(encoding="utf-8").splitlines():
            relative = row.rsplit(",", 2)[0]
            target = (site / relative).resolve()
            if target.is_relative_to(site.resolve()) and target.is_file():
                target.unlink()
        shutil.rmtree(dist_info, ignore_errors=True)
    shutil.rmtree(site / "bin", ignore_errors=True)
    for directory in sorted((p for p in site.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(directory.iterdir()):
            directory.rmdir()


def install_dependencies(requirements: list[str], cache_root: Path) -> Path:
    """The installed dependency tree for `requirements`, from the cache or downloaded once into it."""
    cached = cache_root / cache_key(requirements)
    if (cached / ".complete").exists():
        return cached
    staging = cache_root / f".{cached.name}.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    print(
        f"nurture layer: downloading {len(requirements)} runtime dependencies for "
        f"python{PYTHON_VERSION} {PLATFORM} into {cached}",
        file=sys.stderr,
        flush=True,
    )
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        # Errors only: the download is announced above, and pip's warnings about this machine's own
        # index configuration are noise in a synth.
        "-qq",
        "--disable-pip-version-check",
        "--no-compile",
        "--platform",
        PLATFORM,
        "--implementation",
        IMPLEMENTATION,
        "--python-version",
        PYTHON_VERSION,
        "--only-binary=:all:",
        "--target",
        str(staging),
        *requirements,
    ]
    try:
        subprocess.run(command, check=True)  # noqa: S603 - fixed pip command, requirements from pyproject.toml
        prune_runtime_provided(staging)
        (staging / ".complete").write_text("\n".join(requirements) + "\n", encoding="utf-8")
        shutil.rmtree(cached, ignore_errors=True)
        staging.rename(cached)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return cached


@jsii.implements(cdk.ILocalBundling)
class LayerBundling:
    """Local bundling of the layer: `<output>/python` holds the dependencies and the `nurture` package without
    `nurture.tools` (the CLI and the local stack)."""

    def __init__(
        self,
        *,
        requirements: list[str] | None = None,
        package_dir: Path = paths.NURTURE_PACKAGE_DIR,
        cache_root: Path = paths.LAYER_CACHE_DIR,
    ) -> None:
        self._requirements = runtime_requirements() if requirements is None else requirements
        self._package_dir = package_dir
        self._cache_root = cache_root

    # `image` is keyword-only so that jsii passes the BundlingOptions struct as keywords; it is unused.
    def try_bundle(self, output_dir: str, *, image: cdk.DockerImage, **_options: Any) -> bool:
        site = Path(output_dir) / "python"
        dependencies = install_dependencies(self._requirements, self._cache_root)
        shutil.copytree(dependencies, site, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".complete"))
        destination = site / self._package_dir.name
        shutil.rmtree(destination, ignore_errors=True)
        shutil.copytree(
            self._package_dir, destination, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", *NOT_SHIPPED)
        )
        return True
