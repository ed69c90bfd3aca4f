"""Cold starts (issue 12): a handler's import loads only what its cold start needs; the X-Ray tracer is built at the
first invocation; the ingest function's SnapStart hooks prime before the snapshot and restore uniqueness after."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Callable
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from nurture import constants as c
from nurture.runtime import snapstart, wiring
from nurture.runtime.observability import LazyTracer
from tests.support import ROOT, import_handler
from tests.unit.conftest import DEPLOYED

# Packages that no handler's import may load: each is loaded by the first call that needs it. (botocore's own
# `__init__` is cheap, and powertools imports it to register its user agent: its session and client are not.)
LAZY = (
    "boto3",
    "botocore.session",
    "botocore.client",
    "aws_xray_sdk",
    "requests",
    "yaml",
    "email_validator",
    "jinja2",
    "markdown_it",
    "slack_sdk",
)


def _handler_module(function: str) -> ModuleType:
    return import_handler(function, f"cold_start_{function}")


@pytest.mark.parametrize("function", tuple(c.FUNCTION_DIRS))
def test_importing_a_handler_loads_neither_the_aws_sdk_nor_the_tracer_nor_what_only_some_calls_need(
    function: str,
) -> None:
    # Given a fresh interpreter with a deployed function's environment, as deployed (Lambda's, tracing on)
    folder = ROOT / "functions" / c.FUNCTION_DIRS[function]
    env = {**DEPLOYED, "AWS_REGION": "eu-west-1", "LAMBDA_TASK_ROOT": str(folder), "PATH": "/usr/bin:/bin"}
    code = f"import handler, json, sys; print(json.dumps([m for m in {LAZY!r} if m in sys.modules]))"

    # When its handler module is imported
    done = subprocess.run([sys.executable, "-c", code], cwd=folder, env=env, capture_output=True, text=True, check=True)

    # Then none of the lazily loaded packages is
    assert json.loads(done.stdout) == []


def test_the_tracer_leaves_a_handler_untraced_where_powertools_would_not_trace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAMBDA_TASK_ROOT", raising=False)  # outside Lambda
    lazy = LazyTracer(service="test")
    built: list[str] = []
    monkeypatch.setattr(lazy, "tracer", lambda: built.append("tracer"))

    traced = lazy.capture_lambda_handler(lambda event, context: {"event": event})

    assert traced({"a": 1}, None) == {"event": {"a": 1}}
    assert built == []


def test_the_tracer_is_built_and_applied_once_at_the_first_invocation(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a Lambda environment with tracing on, and a stand-in for powertools' Tracer
    monkeypatch.setenv("LAMBDA_TASK_ROOT", "/var/task")
    monkeypatch.delenv("POWERTOOLS_TRACE_DISABLED", raising=False)
    calls: list[str] = []

    def capture_lambda_handler(handler: Callable[..., Any]) -> Callable[..., Any]:
        calls.append("wrapped")

        def traced(event: Any, context: Any) -> Any:
            calls.append("traced call")
            return handler(event, context)

        return traced

    lazy = LazyTracer(service="test")
    monkeypatch.setattr(lazy, "tracer", lambda: SimpleNamespace(capture_lambda_handler=capture_lambda_handler))

    # When the decorated handler is defined (the module's import) and then invoked twice
    handler = lazy.capture_lambda_handler(lambda event, context: event)
    assert calls == []
    results = [handler(1, None), handler(2, None)]

    # Then the tracer wrapped it once, at the first call, and traced both calls
    assert results == [1, 2]
    assert calls == ["wrapped", "traced call", "traced call"]


def test_snapstart_hooks_are_not_registered_outside_lambda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)  # not importable, as outside Lambda

    assert snapstart.register(before_snapshot=lambda: None, after_restore=lambda: None) is False


class _Runtime(ModuleType):
    """A stand-in for the Lambda runtime's `snapshot_restore_py`."""

    def __init__(self) -> None:
        super().__init__("snapshot_restore_py")
        self.before: list[Callable[[], None]] = []
        self.after: list[Callable[[], None]] = []

    def register_before_snapshot(self, func: Callable[[], None]) -> Callable[[], None]:
        self.before.append(func)
        return func

    def register_after_restore(self, func: Callable[[], None]) -> Callable[[], None]:
        self.after.append(func)
        return func


def test_the_ingest_function_primes_before_the_snapshot_and_restores_uniqueness_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the Lambda runtime's hooks module, and no AWS endpoint to reach (nothing below may call one)
    runtime = _Runtime()
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", runtime)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # a closed port: any call would fail loudly
    wiring.reset()

    # When the ingest handler is imported (Lambda's init phase)
    handler = _handler_module("ingest")

    # Then it registered its prime and the restore hook
    assert runtime.before == [handler.prime]
    assert runtime.after == [snapstart.after_restore]

    # And the prime builds the resolver and the adapters, with their clients, without a network call
    try:
        handler.prime()
        assert "boto3" in sys.modules
        assert wiring.ports() is wiring.ports()
    finally:
        wiring.reset()


def test_after_restore_reseeds_random_and_drops_cached_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the random state a snapshot would freeze, and powertools' parameters loaded with a cache
    cleared: list[bool] = []
    monkeypatch.setitem(
        sys.modules,
        "aws_lambda_powertools.utilities.parameters",
        SimpleNamespace(clear_caches=lambda: cleared.append(True)),
    )
    random.seed(12)
    frozen = random.getstate()
    from_the_snapshot = [random.random() for _ in range(4)]

    # When two environments are restored from it
    draws = []
    for _ in range(2):
        random.setstate(frozen)
        snapstart.after_restore()
        draws.append([random.random() for _ in range(4)])

    # Then each draws its own sequence, and the cached secrets were dropped in each
    assert draws[0] != from_the_snapshot
    assert draws[0] != draws[1]
    assert cleared == [True, True]
