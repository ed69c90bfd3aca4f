"""Cold import time of each Lambda handler module, against a bare `import boto3`, each in a fresh interpreter.

A module's import time is the wall clock of `python -c "import <module>"` minus that of `python -c pass`
(the interpreter's own start), median of RUNS; `-X importtime` runs give the same figure from inside the
interpreter and the packages that cost the most. Handlers are imported as Lambda does (`handler` from
the function's folder, with the layer's `nurture` importable) under the environment the CDK app sets, plus
the variables Lambda itself sets. With LAMBDA_TASK_ROOT set, powertools' Tracer is enabled, as it is in
AWS (active tracing), so the X-Ray SDK is imported; a second set of runs disables tracing for contrast.

Run: python -m tests.bench.imports  (prints the figures and records them in docs/benchmarks.md)
"""

from __future__ import annotations

import os
import re
import resource
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from nurture import constants as c
from tests.bench.record import record

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ROOT / "functions"
HANDLERS = tuple(c.FUNCTION_DIRS)
RUNS = 5
TOP = 5
_LINE = re.compile(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")


def lambda_env(name: str, tracing: bool) -> dict[str, str]:
    """The environment of a deployed handler: what the CDK app sets, and what Lambda sets."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_", "NURTURE_", "PYTHON"))}
    env |= {
        # Set by the CDK app (infra/constructs/runtime.py, infra/stack.py).
        "POWERTOOLS_SERVICE_NAME": c.SERVICE_NAME,
        "POWERTOOLS_METRICS_NAMESPACE": c.METRICS_NAMESPACE,
        c.ENV_EVENTS_TABLE: c.EVENTS_TABLE,
        c.ENV_LEADS_TABLE: c.LEADS_TABLE,
        c.ENV_IDEMPOTENCY_TABLE: c.IDEMPOTENCY_TABLE,
        c.ENV_CONTENT_BUCKET: "nurture-content",
        c.ENV_EVENT_BUS: c.EVENT_BUS,
        c.ENV_SEND_QUEUE_URL: f"https://sqs.eu-west-1.amazonaws.com/123456789012/{c.SEND_QUEUE}",
        c.ENV_SES_CONFIGURATION_SET: c.SES_CONFIGURATION_SET,
        c.ENV_FROM_ADDRESS: "nurture@example.com",
        c.ENV_WRITE_KEYS_SECRET: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:nurture/write-keys",
        c.ENV_ALLOWED_ORIGINS: "https://www.example.com",
        # Set by Lambda.
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_LAMBDA_FUNCTION_NAME": f"nurture-{name}",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "LAMBDA_TASK_ROOT": str(FUNCTIONS / c.FUNCTION_DIRS[name]) if name in HANDLERS else str(ROOT),
    }
    if not tracing:
        env["POWERTOOLS_TRACE_DISABLED"] = "true"
    return env


def wall(code: str, cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall clock and CPU time (user + system) of a fresh interpreter running `code`, in ms."""
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, check=True, capture_output=True)
    elapsed = time.perf_counter() - started
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    return 1000 * elapsed, 1000 * (cpu.ru_utime - cpu_before.ru_utime + cpu.ru_stime - cpu_before.ru_stime)


def importtime(code: str, cwd: Path, env: dict[str, str]) -> list[tuple[int, int, int, str]]:
    """(self µs, cumulative µs, depth, module) for each import `-X importtime` reports."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], cwd=cwd, env=env, check=True, capture_output=True, text=True
    )
    return [
        (int(m[1]), int(m[2]), (len(m[3]) - 1) // 2, m[4])
        for line in done.stderr.splitlines()
        if (m := _LINE.match(line))
    ]


class Target:
    """One module to import in fresh interpreters: `handler` from functions/<name>, or bare boto3."""

    def __init__(self, name: str, tracing: bool) -> None:
        self.name = name
        self.cwd = FUNCTIONS / c.FUNCTION_DIRS[name] if name in HANDLERS else ROOT
        self.module = "handler" if name in HANDLERS else name
        self.env = lambda_env(name, tracing)
        self.startup = {m for _, _, _, m in importtime("pass", self.cwd, self.env)}
        self.walls: list[float] = []
        self.cpus: list[float] = []
        self.cumulative: list[float] = []
        self.packages: list[Counter[str]] = []
        self.modules = 0

    def run_once(self) -> None:
        base_wall, base_cpu = wall("pass", self.cwd, self.env)
        import_wall, import_cpu = wall(f"import {self.module}", self.cwd, self.env)
        self.walls.append(import_wall - base_wall)
        self.cpus.append(import_cpu - base_cpu)
        lines = [x for x in importtime(f"import {self.module}", self.cwd, self.env) if x[3] not in self.startup]
        self.cumulative.append(next(cum for _, cum, depth, m in lines if m == self.module and depth == 0) / 1000)
        packages: Counter[str] = Counter()
        for own, _, _, m in lines:
            packages[m.split(".")[0]] += own
        self.packages.append(packages)
        self.modules = len(lines)

    @property
    def wall_ms(self) -> float:
        return statistics.median(self.walls)

    @property
    def cpu_ms(self) -> float:
        return statistics.median(self.cpus)

    @property
    def importtime_ms(self) -> float:
        return statistics.median(self.cumulative)

    def top(self) -> list[tuple[str, float]]:
        names = {p for packages in self.packages for p in packages}
        median = {p: statistics.median(packages[p] for packages in self.packages) / 1000 for p in names}
        return sorted(median.items(), key=lambda kv: -kv[1])[:TOP]


def main() -> None:
    started = time.perf_counter()
    targets = {(name, tracing): Target(name, tracing) for tracing in (True, False) for name in (*HANDLERS, "boto3")}
    for _ in range(RUNS):  # interleaved, so that load from elsewhere on the machine falls on every module alike
        for target in targets.values():
            target.run_once()
    boto3 = {tracing: targets["boto3", tracing] for tracing in (True, False)}
    body = (
        f'Wall: `python -c "import handler"` minus `python -c pass`, median of {RUNS} fresh interpreters each '
        "(run interleaved). CPU: the same pair's user + system time, less sensitive to other load on the machine. "
        "`-X importtime`: the import timed inside the interpreter (cumulative, median). "
        f"Python {sys.version.split()[0]} on this 2-core machine, warm file cache, other work running; Lambda's "
        "python3.12 on arm64 will differ.\n\n"
        "| module (X-Ray on, as deployed) | wall | minus bare boto3 | CPU | minus bare boto3 | `-X importtime` "
        "| modules | tracing off: wall / CPU / modules |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
    )
    for name in (*HANDLERS, "boto3"):
        on, off, bare = targets[name, True], targets[name, False], boto3[True]
        label = f"`functions/{c.FUNCTION_DIRS[name]}/handler.py`" if name in HANDLERS else "bare `import boto3`"
        body += (
            f"| {label} | {on.wall_ms:.0f} ms | {on.wall_ms - bare.wall_ms:+.0f} ms | {on.cpu_ms:.0f} ms "
            f"| {on.cpu_ms - bare.cpu_ms:+.0f} ms | {on.importtime_ms:.0f} ms | {on.modules} "
            f"| {off.wall_ms:.0f} ms / {off.cpu_ms:.0f} ms / {off.modules} |\n"
        )
    body += (
        f"\nThe {TOP} heaviest packages per module, as deployed (X-Ray on): `-X importtime` self time summed "
        "over each top-level package's modules, median ms:\n\n| module | " + " | ".join(f"#{i + 1}" for i in range(TOP))
    )
    body += " |\n| --- |" + " --- |" * TOP + "\n"
    for name in (*HANDLERS, "boto3"):
        label = name if name in HANDLERS else "bare boto3"
        body += f"| {label} | " + " | ".join(f"{p} {ms:.0f}" for p, ms in targets[name, True].top()) + " |\n"
    count = len(targets) * (RUNS * 3 + 1)
    body += f"\n_{count} interpreters started in {time.perf_counter() - started:.0f} s._\n"
    print(body)
    record("imports", "Cold import time of the Lambda handlers", body)


if __name__ == "__main__":
    main()
