"""Metric names live in one enum, and the architecture doc explains every one of them."""

from __future__ import annotations

import ast
from collections.abc import Iterator

import pytest

from nurture.runtime.observability import Metric, count, metrics, seconds
from tests.support import ROOT

PACKAGE = ROOT / "layers" / "nurture" / "python" / "nurture"


def test_docs_architecture_lists_every_metric_the_engine_emits() -> None:
    architecture = (ROOT / "docs" / "architecture.md").read_text()

    missing = [metric.value for metric in Metric if f"`{metric.value}`" not in architecture]

    assert not missing, f"docs/architecture.md does not explain {missing}"


def test_metrics_are_emitted_only_through_the_metric_enum() -> None:
    sources = [*PACKAGE.rglob("*.py"), *(ROOT / "functions").rglob("*.py")]
    assert len(sources) > 20, "the package and the handlers were not found: nothing would be checked"
    emitting_directly = []
    for path in sources:
        if path.name == "observability.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "add_metric":
                emitting_directly.append(f"{path.relative_to(ROOT)}:{node.lineno}")

    assert not emitting_directly, f"use observability.count(Metric.…) instead: {emitting_directly}"


@pytest.fixture
def buffered() -> Iterator[dict[str, dict[str, object]]]:
    """powertools' buffered metrics of this invocation (what the EMF blob would carry), empty before and after."""
    metrics.clear_metrics()
    yield metrics.metric_set
    metrics.clear_metrics()


def test_a_zero_count_is_not_emitted_but_a_zero_gauge_is(buffered: dict[str, dict[str, object]]) -> None:
    # CloudWatch bills a metric for every hour it is emitted in, zeros too: a tick with nothing due emits no count
    count(Metric.LEADS_DUE, 0)
    count(Metric.DISPATCH_FAILURES, 0)
    count(Metric.EMAILS_SENT, 2)
    # The dispatcher-lag alarm's gauge is emitted every tick, nothing due or not
    seconds(Metric.OLDEST_DUE_SECONDS, 0.0)

    assert set(buffered) == {Metric.EMAILS_SENT.value, Metric.OLDEST_DUE_SECONDS.value}
    assert buffered[Metric.EMAILS_SENT.value]["Value"] == [2.0]
