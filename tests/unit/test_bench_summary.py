"""`make bench` ends with every figure that has a target: the summary must find them all in docs/benchmarks.md."""

from __future__ import annotations

from tests.bench.summary import verdicts

DOC = """# Benchmarks

<!-- bench:replay -->
## Replaying

_Measured 2026-11-23 on x86_64, Python 3.11.7, by `tests/bench/replay.py`._

| figure | value |
| --- | --- |
| leads | 1,000 |
| throughput per core | 13,512 a second; target 50,000: **MISS** (27% of it) |
<!-- /bench:replay -->

<!-- bench:imports -->
## Imports

_Measured 2026-11-24 on aarch64, Python 3.12.1, by `tests/bench/imports.py`._

| handler | ratio | target |
| --- | ---: | --- |
| ingest | 1.31x | 1.5x **PASS** |
| scorer | 1.62x | 1.5x **MISS** |
Prose that says **PASS** outside a table is not a figure.
<!-- /bench:imports -->
"""


def test_every_row_with_a_verdict_is_listed_with_its_section_and_date() -> None:
    assert verdicts(DOC) == [
        (
            "replay",
            "2026-11-23 on x86_64, Python 3.11.7",
            "throughput per core | 13,512 a second; target 50,000: MISS (27% of it)",
            "MISS",
        ),
        ("imports", "2026-11-24 on aarch64, Python 3.12.1", "ingest | 1.31x | 1.5x PASS", "PASS"),
        ("imports", "2026-11-24 on aarch64, Python 3.12.1", "scorer | 1.62x | 1.5x MISS", "MISS"),
    ]
