"""Writes a benchmark's figures into its own section of docs/benchmarks.md, leaving the others alone."""

from __future__ import annotations

import platform
import re
from datetime import UTC, datetime
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"


def record(section: str, title: str, body: str) -> None:
    start, end = f"<!-- bench:{section} -->", f"<!-- /bench:{section} -->"
    stamp = (
        f"_Measured {datetime.now(UTC):%Y-%m-%d} on {platform.machine()}, Python "
        f"{platform.python_version()}, by `tests/bench/{section}.py`._"
    )
    block = f"{start}\n## {title}\n\n{stamp}\n\n{body.strip()}\n{end}"
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    BENCHMARKS.write_text(text)
