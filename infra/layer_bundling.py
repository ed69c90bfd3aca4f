"""Builds the shared Lambda layer without Docker.

Runtime dependencies come as manylinux aarch64 wheels for CPython 3.12 (pip's cross-platform install),
cached per dependency list; the `nurture` package is copied fresh on every synth.

Every module is shipped with its bytecode, compiled by a CPython 3.12 found on this machine (`lambda_python`):
/opt is read-only in Lambda, so without it each cold start compiles every module it imports, and keeps none.
The bytecode is compiled at optimisation level 0, as Lambda's runtime runs Python (no -O: `*.cpython-312.pyc`,
not `.opt-1.pyc`), and with `unchecked-hash` invalidation: the layer never changes under its bytecode, so
Python uses the .pyc without comparing it with its source (the timestamps a zip keeps would not match anyway),
and the same sources give the same bytes, so the asset hash stays stable. Without a 3.12 interpreter the layer
ships sources only, as before, and says so on stderr.
"""

from __future__ import annotations

import glob
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
# Where a CPython PYTHON_VERSION is looked for, after NURTURE_LAYER_PYTHON and `python3.12` on the PATH.
PYENV_PYTHONS = "~/.pyenv/versions/{version}.*/bin/python{version}"
# Lambda runs python without -O: bytecode of optimisation level 0 is the one it reads.
OPTIMISATION_LEVEL = 0
# Where Lambda mounts a layer's python/ folder: the path compiled into the bytecode (tracebacks name the files
# there), whichever folder the synth compiled them in, so that the same sources give the same layer.
LAYER_PATH = "/opt/python"
# Bump when the way the bytecode is compiled changes, so that cached dependencies are compiled again.
BYTECODE_FORMAT = 2
# Files in the dependency cache that are the cache's own bookkeeping, never shipped.
CACHE_MARKERS = (".complete", ".bytecode-*")

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


def python_version_of(python: str) -> str | None:
    """`major.minor` of the interpreter at `python`, or None when it does not run."""
    try:
        done = subprocess.run(  # noqa: S603 - an interpreter path found by lambda_python
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def lambda_python(version: str = PYTHON_VERSION) -> str | None:
    """A CPython `version` interpreter on this machine to compile the layer's bytecode with, or None."""
    candidates = [
        os.environ.get("NURTURE_LAYER_PYTHON"),
        shutil.which(f"python{version}"),
        *sorted(glob.glob(os.path.expanduser(PYENV_PYTHONS.format(version=version))), reverse=True),
    ]
    return next((c for c in candidates if c and python_version_of(c) == version), None)


def compile_bytecode(root: Path, python: str, site: Path | None = None) -> bool:
    """Compile every module under `root` with `python`, as Lambda's runtime would import it (see the module doc), and
    as if `site` (default `root`) were LAYER_PATH. Files that do not compile (a dependency's Python 2 example, say)
    are left as sources, as Python would. True when compileall ran to its end (its exit status is 1 when some
    files did not compile, which is expected; anything else, a crash or an interruption, is not)."""
    status = subprocess.run(  # noqa: S603 - the interpreter found by lambda_python, compileall's documented options
        [
            python,
            "-m",
            "compileall",
            "-qq",
            "-j",
            "0",
            "-o",
            str(OPTIMISATION_LEVEL),
            "--invalidation-mode",
            "unchecked-hash",
            "-s",
            str((site or root).resolve()),
            "-p",
            LAYER_PATH,
            str(root.resolve()),
        ],
        check=False,
    ).returncode
    return status in (0, 1)


def compile_cached_dependencies(cached: Path, python: str) -> None:
    """Compile the cached dependencies once per interpreter version, marking the cache when done."""
    marker = cached / f".bytecode-{python_version_of(python)}-{BYTECODE_FORMAT}"
    if not marker.exists() and compile_bytecode(cached, python):  # a compile cut short is tried again next time
        marker.write_text(f"compiled by {python}\n", encoding="utf-8")


AUTO = "auto"


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
        bytecode_python: str | None = AUTO,
    ) -> None:
        """`bytecode_python`: the interpreter that compiles the bytecode; AUTO finds a CPython 3.12 (`lambda_python`),
        None ships sources only."""
        self._requirements = runtime_requirements() if requirements is None else requirements
        self._package_dir = package_dir
        self._cache_root = cache_root
        self._bytecode_python = lambda_python() if bytecode_python == AUTO else bytecode_python

    # `image` is keyword-only so that jsii passes the BundlingOptions struct as keywords; it is unused.
    def try_bundle(self, output_dir: str, *, image: cdk.DockerImage, **_options: Any) -> bool:
        site = Path(output_dir) / "python"
        dependencies = install_dependencies(self._requirements, self._cache_root)
        if self._bytecode_python is not None:
            compile_cached_dependencies(dependencies, self._bytecode_python)
        else:
            print(
                f"nurture layer: no CPython {PYTHON_VERSION} found (set NURTURE_LAYER_PYTHON): the layer ships "
                "sources only, and Lambda compiles every module at each cold start",
                file=sys.stderr,
                flush=True,
            )
        shutil.copytree(dependencies, site, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*CACHE_MARKERS))
        destination = site / self._package_dir.name
        shutil.rmtree(destination, ignore_errors=True)
        shutil.copytree(
            self._package_dir, destination, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", *NOT_SHIPPED)
        )
        if self._bytecode_python is not None:
            compile_bytecode(destination, self._bytecode_python, site=site)
        return True
