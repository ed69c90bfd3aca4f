"""How fast the pure engine replays a simulated year: 1,000 leads, every message and tick.

Run: python -m tests.bench.replay  (prints the figures and records them in docs/benchmarks.md)
"""

from __future__ import annotations

import cProfile
import json
import pstats
import statistics
import time
import tracemalloc
from datetime import UTC, datetime, timedelta

from nurture.domain.journey import SalesAlert, Send, Transition
from nurture.domain.messages import Message, segment_message
from nurture.tools.engine import Engine
from nurture.tools.population import population
from tests.bench.record import record
from tests.support import starter

LEADS = 1_000
START = datetime(2026, 1, 5, tzinfo=UTC)
TARGET = 50_000  # inputs a second per core (issue 12)
PROFILED = 12


def main() -> None:
    lines = [json.dumps(m, default=str) for m in population(LEADS, START, days=365)]
    parse_started = time.perf_counter()
    messages = [segment_message.validate_json(line) for line in lines]
    parse_seconds = time.perf_counter() - parse_started
    runs: list[float] = []
    cpu: list[float] = []
    for attempt in range(5):
        engine = Engine(starter())
        if attempt == 0:
            tracemalloc.start()
        started, cpu_started = time.perf_counter(), time.process_time()
        engine.run(messages, until=START + timedelta(days=365))
        runs.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
        if attempt == 0:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    seconds = statistics.median(runs)
    cpu_seconds = min(cpu)
    inputs = engine.messages_applied + engine.ticks_applied
    rate = inputs / cpu_seconds
    verdict = "PASS" if rate >= TARGET else "MISS"
    throughput = f"{rate:,.0f} a second; target {TARGET:,}: **{verdict}** ({rate / TARGET:.0%} of it)"
    counts = {
        kind.__name__: sum(isinstance(e, kind) for e in engine.effects) for kind in (Transition, Send, SalesAlert)
    }
    body = f"""
| figure | value |
| --- | --- |
| leads | {LEADS:,} |
| messages in the journey file | {len(messages):,} |
| dispatcher ticks run (only leads that were due) | {engine.ticks_applied:,} |
| effects: transitions / sends / alerts | {counts["Transition"]:,} / {counts["Send"]:,} / {counts["SalesAlert"]:,} |
| parse the file (pydantic) | {parse_seconds:.2f} s |
| replay a simulated year, wall clock (median of 5) | {seconds:.2f} s |
| replay a simulated year, CPU time of this one process (best of 5) | {cpu_seconds:.2f} s |
| throughput per core, messages + ticks through the engine (CPU time) | {throughput} |
| peak Python memory during the first replay | {peak / 2**20:.1f} MiB |

Where the time goes (one more replay under `cProfile`, which slows it about twofold; own time of the
{PROFILED} costliest functions, share of the profiled run):

{profile(messages)}
"""
    print(body)
    record("replay", "Replaying a simulated year through the pure engine", body)


def profile(messages: list[Message]) -> str:
    profiler = cProfile.Profile()
    engine = Engine(starter())
    profiler.enable()
    engine.run(messages, until=START + timedelta(days=365))
    profiler.disable()
    stats = pstats.Stats(profiler)
    table = stats.stats  # type: ignore[attr-defined]
    total = sum(own for _, _, own, _, _ in table.values())
    rows = sorted(table.items(), key=lambda item: -item[1][2])[:PROFILED]
    lines = ["| function | calls | own time | share | with callees |", "| --- | ---: | ---: | ---: | ---: |"]
    for (file, line, name), (_, calls, own, cumulative, _) in rows:
        where = f"{file.split('site-packages/')[-1].split('python/nurture/')[-1]}:{line} {name}"
        lines.append(f"| `{where}` | {calls:,} | {own:.3f} s | {own / total:.0%} | {cumulative:.3f} s |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
