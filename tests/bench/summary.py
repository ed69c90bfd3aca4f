"""Every benchmark figure that has a target, against it: the rows marked PASS or MISS in docs/benchmarks.md.

Run: python -m tests.bench.summary  (the last step of `make bench`, after each benchmark recorded its section)
"""

from __future__ import annotations

import re
import sys

from rich.console import Console
from rich.table import Table

from tests.bench.record import BENCHMARKS

_SECTION = re.compile(
    r"<!-- bench:(?P<name>[\w-]+) -->\n## (?P<title>[^\n]+)\n\n_Measured (?P<stamp>[^\n]*?), by [^\n]*\n"
    r"(?P<body>.*?)<!-- /bench:(?P=name) -->",
    re.DOTALL,
)
_VERDICT = re.compile(r"\*\*(PASS|MISS)\*\*")


def verdicts(text: str) -> list[tuple[str, str, str, str]]:
    """(section, when measured, the figure's row without its verdict, PASS or MISS) for every row with a verdict."""
    found = []
    for section in _SECTION.finditer(text):
        for line in section["body"].splitlines():
            verdict = _VERDICT.search(line)
            if line.startswith("|") and verdict is not None:
                cells = [cell.strip() for cell in line.strip("|").split("|")]
                figure = " | ".join(_VERDICT.sub(verdict[1], cell) for cell in cells if cell)
                found.append((section["name"], section["stamp"], figure, verdict[1]))
    return found


def main() -> int:
    rows = verdicts(BENCHMARKS.read_text())
    table = Table(title="Benchmark targets (docs/benchmarks.md)", show_lines=False)
    for column in ("bench", "figure against its target", "verdict"):
        table.add_column(column, overflow="fold")
    for section, _, figure, verdict in rows:
        table.add_row(section, figure, f"[green]{verdict}[/]" if verdict == "PASS" else f"[red]{verdict}[/]")
    console = Console(width=max(Console().width, 140))
    console.print(table)
    missed = sum(verdict == "MISS" for *_, verdict in rows)
    console.print(f"{len(rows)} figures with a target: {len(rows) - missed} met, {missed} missed.")
    return 0  # a missed target is reported, not an error: the figures are what `make bench` is for


if __name__ == "__main__":
    sys.exit(main())
