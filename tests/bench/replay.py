"""How fast the pure engine replays a simulated year: 1,000 leads, every message and tick.

Run: python -m tests.bench.replay  (prints the figures and records them in docs/benchmarks.md)
"""

from __future__ import annotations

import json
import statistics
import time
import tracemalloc
from datetime import UTC, datetime, timedelta

from nurture.domain.journey import SalesAlert, Send, Transition
from nurture.domain.messages import segment_message
from nurture.tools.engine import Engine
from nurture.tools.population import population
from tests.bench.record import record
from tests.support import starter

LEADS = 1_000
START = datetime(2026, 1, 5, tzinfo=UTC)


def main() -> None:
    lines = [json.dumps(m, default=str) for m in population(LEADS, START, days=365)]
    parse_started = time.perf_counter()
    messages = [segment_message.validate_json(line) for line in lines]
    parse_seconds = time.perf_counter() - parse_started
    runs = []
    for attempt in range(3):
        engine = Engine(starter())
        if attempt == 0:
            tracemalloc.start()
        started = time.perf_counter()
        engine.run(messages, until=START + timedelta(days=365))
        runs.append(time.perf_counter() - started)
        if attempt == 0:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    seconds = statistics.median(runs)
    inputs = engine.messages_applied + engine.ticks_applied
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
| replay a simulated year (median of 3) | {seconds:.2f} s |
| throughput, messages + ticks through the engine | {inputs / seconds:,.0f} per second |
| peak Python memory during the first replay | {peak / 2**20:.1f} MiB |
"""
    print(body)
    record("replay", "Replaying a simulated year through the pure engine", body)


if __name__ == "__main__":
    main()
