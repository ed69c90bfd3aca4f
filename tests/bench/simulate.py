"""How long `nurture simulate --leads 10000 --days 180 --compare drip` takes, and what it finds.

Run: python -m tests.bench.simulate  (prints the figures and records them in docs/benchmarks.md)
"""

from __future__ import annotations

import os
import resource
import time

from nurture.tools.simulate.command import comparison
from nurture.tools.simulate.population import Population
from nurture.tools.simulate.run import SHARDS, drip, simulate
from tests.bench.record import record
from tests.support import starter

LEADS, DAYS, SEED = 10_000, 180, 7


def main() -> None:
    programme = starter()
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    result = simulate(programme, Population(), LEADS, DAYS, SEED)
    behavioural = time.perf_counter() - started
    classic = drip(result, SEED)
    total = time.perf_counter() - started
    load_after = os.getloadavg()[0]
    cpu = sum(
        usage.ru_utime + usage.ru_stime
        for usage in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    )
    rows = "\n".join(f"| {label} | {ours} | {theirs} |" for label, ours, theirs in comparison(result, classic))
    body = f"""
{LEADS:,} synthetic buyers over {DAYS} days, seed {SEED}, the starter programme, {SHARDS} shards on
{os.cpu_count()} cores (a machine shared with other work: the load varies between runs).

| figure | value |
| --- | --- |
| behavioural run through the real engine | {behavioural:.1f} s |
| drip run of the same buyers | {total - behavioural:.1f} s |
| both, wall clock | {total:.1f} s |
| CPU time, both processes (programme loading included) | {cpu:.1f} s |
| load average (1 min) before / after, of a {os.cpu_count()}-core machine | {load_before:.1f} / {load_after:.1f} |

| SIMULATION: synthetic buyers, not your data | behavioural programme | classic drip |
| --- | ---: | ---: |
{rows}
"""
    print(body)
    record("simulate", "Simulation: 10,000 synthetic buyers through the engine and a classic drip", body)


if __name__ == "__main__":
    main()
