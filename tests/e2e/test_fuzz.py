"""Schemathesis against docs/openapi.json on the local stack: no request, with or without a key, gets a 5xx,
and every answer has a documented status, content type and body schema.

Bounded for CI (a seeded run of about two thousand cases, most of them the coverage phase, which is every
boundary the schema defines whatever --max-examples says). `make fuzz` runs the same with NURTURE_FUZZ_SCALE=10;
its figures are in docs/reliability.md. Only 127.0.0.1 is reached: the stack's own URL, with proxies cleared.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import START, Local
from tests.support import ROOT

pytestmark = pytest.mark.e2e

SEED = 20260105
SCALE = int(os.environ.get("NURTURE_FUZZ_SCALE", "1"))
EXAMPLES = 25 * SCALE  # per operation and phase (fuzzing, stateful); the coverage phase is not bounded by it
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
EMAIL = "fuzz@northwind.example"
SPEC = ROOT / "docs" / "openapi.json"


@dataclass
class Run:
    output: str
    returncode: int
    seconds: float
    statuses: collections.Counter[int]

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    def summary(self) -> str:
        found = [i for h in ("FAILURES", "ERRORS", "SUMMARY") if (i := self.output.find(f"=== {h} ===")) >= 0]
        start = min(found, default=-1)
        text = self.output[self.output.rfind("\n", 0, start) + 1 :] if start >= 0 else self.output
        return text[-20_000:]


def _schemathesis(url: str, config: Path, report: Path, *options: str) -> Run:
    assert url.startswith("http://127.0.0.1:"), url
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1"
    command = [
        *(sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run", str(SPEC)),
        # One worker: with two, CPython 3.11 can fail compiling schemathesis's generators in parallel threads
        # ("SystemError: AST constructor recursion depth mismatch"), a crash of the tool, not of the API.
        *("--url", url, "--checks", CHECKS, "--seed", str(SEED), "--workers", "1", "--request-timeout", "30"),
        *("--max-redirects", "0"),  # 127.0.0.1 only: a redirect would be an undocumented 3xx, not followed
        *("--generation-database", "none", "--no-color", "--report", "ndjson", "--report-ndjson-path", str(report)),
        *options,
    ]
    began = time.monotonic()
    done = subprocess.run(command, cwd=report.parent, env=env, capture_output=True, text=True, timeout=900)
    seconds = time.monotonic() - began
    statuses: collections.Counter[int] = collections.Counter()
    if report.exists():
        for line in report.read_text().splitlines():
            finished = json.loads(line).get("ScenarioFinished")
            for interaction in ((finished or {}).get("recorder") or {}).get("interactions", {}).values():
                if interaction.get("response"):
                    statuses[interaction["response"]["status_code"]] += 1
    return Run(done.stdout + done.stderr, done.returncode, seconds, statuses)


@pytest.fixture(scope="module")
def config(local: Local, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lead to find, so the admin routes answer 200 (a LeadView to check) as well as 400 and 404: its email
    and id are dictionary values schemathesis draws for `email` and `lead_id` about a third of the time."""
    local.send("identify", {"userId": "u-fuzz", "timestamp": START, "traits": {"email": EMAIL, "company_size": 240}})
    local.send("track", {"userId": "u-fuzz", "timestamp": START, "event": "Demo Requested"})
    local.drain()
    local.advance(2)
    lead_id = local.lead(EMAIL)["lead_id"]
    path = tmp_path_factory.mktemp("fuzz") / "schemathesis.toml"
    path.write_text(
        f"""
[dictionaries.emails]
values = ["{EMAIL}"]
[dictionaries.lead-ids]
values = ["{lead_id}"]
[parameters]
"query.email" = {{ dictionary = "emails", probability = 0.3 }}
"path.lead_id" = {{ dictionary = "lead-ids", probability = 0.3 }}
"""
    )
    return path


@pytest.mark.parametrize(
    ("who", "options"),
    [
        pytest.param(
            "with the keys",
            ("--header", "X-Write-Key: e2e-write-key", "--header", "Authorization: Bearer e2e-admin-token"),
            id="keys",
        ),
        pytest.param("without a key", ("--phases", "fuzzing"), id="no-key"),
    ],
)
def test_no_request_gets_a_5xx_and_every_answer_is_as_documented(
    local: Local, config: Path, who: str, options: tuple[str, ...]
) -> None:
    report = config.with_name(f"{who.replace(' ', '-')}.ndjson")
    run = _schemathesis(local.url, config, report, "--max-examples", str(EXAMPLES), *options)
    by_status = ", ".join(f"{status}: {n}" for status, n in sorted(run.statuses.items()))
    print(f"\nschemathesis {who}: {run.requests} requests in {run.seconds:.0f} s ({by_status})\n{run.summary()}")
    assert run.requests > 0, run.output[-5_000:]
    assert not [status for status in run.statuses if status >= 500], run.summary()
    assert run.returncode == 0, run.summary()
