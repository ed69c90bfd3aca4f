"""`nurture local` started as a real process on a free port, driven over HTTP."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support import ROOT

START = "2026-01-05T09:00:00+00:00"  # a Monday morning in London


@dataclass
class Local:
    url: str
    process: subprocess.Popen[str]
    write_key: str = "e2e-write-key"
    admin_token: str = "e2e-admin-token"

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None, raw: bytes | None = None
    ) -> tuple[int, Any]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"content-type": "application/json", **(headers or {})}
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as answer:
                return answer.status, json.load(answer)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)

    def send(self, kind: str, message: dict[str, Any]) -> tuple[int, Any]:
        basic = base64.b64encode(f"{self.write_key}:".encode()).decode()
        return self.call("POST", f"/v1/{kind}", message, {"authorization": f"Basic {basic}"})

    def lead(self, email: str) -> dict[str, Any]:
        status, lead = self.call(
            "GET", f"/v1/leads?email={email}", headers={"authorization": f"Bearer {self.admin_token}"}
        )
        assert status == 200, lead
        return lead

    def advance(self, days: float) -> str:
        status, answer = self.call("POST", "/_local/clock", {"advance_days": days})
        assert status == 200, answer
        return answer["now"]

    def drain(self) -> str:
        return self.call("POST", "/_local/drain")[1]["now"]

    def outbox(self, email: str) -> list[dict[str, Any]]:
        return [m for m in self.call("GET", "/_local/outbox")[1] if m["to"] == email]


@pytest.fixture(scope="module")
def local() -> Iterator[Local]:
    with start_local() as started:
        yield started


@contextlib.contextmanager
def start_local(*options: str, environment: dict[str, str] | None = None) -> Iterator[Local]:
    """`nurture local --clock manual` on a free port, with these extra command-line options and environment
    variables (an empty value removes one); stopped with Ctrl-C."""
    env = {**os.environ, "NURTURE_WRITE_KEY": "e2e-write-key", "NURTURE_ADMIN_TOKEN": "e2e-admin-token"}
    for name, value in (environment or {}).items():
        if value:
            env[name] = value
        else:
            env.pop(name, None)
    command = ["local", "--clock", "manual", "--start", START, "--port", "0", *options]
    process = subprocess.Popen(
        [sys.executable, "-m", "nurture.tools.cli", *command],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 90
    url = None
    assert process.stdout is not None
    while url is None and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        if match := re.search(r"running at (http://127\.0\.0\.1:\d+)", line):
            url = match.group(1)
    if url is None:
        process.kill()
        pytest.fail(f"nurture local did not start: {process.stdout.read()}")
    yield Local(url=url, process=process)
    process.send_signal(signal.SIGINT)  # Ctrl-C
    assert process.wait(timeout=30) == 0
