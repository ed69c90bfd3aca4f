"""`nurture report`: the monthly review of a local or deployed stack, in the terminal, as JSON, or as an HTML file.

It reads the month's counters (`nurture.domain.metrics`): from a running `nurture local` (`--local URL`, or the one
the machine runs) or from a deployed stack's leads table (`--stack NAME`, standard credential chain).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nurture import constants as c
from nurture.domain.programme import Programme

MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
TREND_MONTHS = 12


def month_arg(text: str) -> str:
    if not MONTH.fullmatch(text):
        raise argparse.ArgumentTypeError(f"'{text}' is not a month such as 2026-11")
    return text


MAX_COST = 1e12


def cost_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"'{text}' is not an amount such as 1200") from error
    if not 0 <= value <= MAX_COST:  # also refuses nan and infinities
        raise argparse.ArgumentTypeError(f"'{text}' must be an amount from 0 to {MAX_COST:,.0f}")
    return value


def add_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("--month", type=month_arg, default=None, help="YYYY-MM (default: the stack's current month)")
    command.add_argument("--baseline", type=month_arg, default=None, help="a month to compare MQL-to-SQL with")
    command.add_argument(
        "--html", type=Path, default=None, metavar="FILE", help="also write a self-contained HTML report"
    )
    command.add_argument("--json", action="store_true", help="print the report as one JSON document")
    where = command.add_mutually_exclusive_group()
    where.add_argument("--local", metavar="URL", help="a `nurture local` (default: the one running on this machine)")
    where.add_argument("--stack", metavar="NAME", help="a deployed stack (standard credential chain)")
    command.add_argument("--region", default=None, help="AWS region for --stack (default: the credential chain's)")
    command.add_argument("--programme", type=Path, default=None, help="orders emails as the programme does")
    command.add_argument("--aws-cost", type=cost_arg, default=None, metavar="USD", help="the month's AWS cost, for ROI")
    command.add_argument(
        "--content-cost", type=cost_arg, default=None, metavar="USD", help="the month's content cost (default 0)"
    )


class SourceError(Exception):
    """The stack could not be read: said to the user in one line."""


def previous_months(month: str, count: int) -> list[str]:
    year, number = int(month[:4]), int(month[5:])
    months = []
    for _ in range(count):
        months.append(f"{year:04d}-{number:02d}")
        year, number = (year - 1, 12) if number == 1 else (year, number - 1)
    return sorted(months)


def from_local(url: str) -> tuple[datetime, dict[str, dict[str, float]]]:
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/_local/metrics", timeout=60) as answer:  # noqa: S310
            body: Any = json.loads(answer.read())
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise SourceError(f"cannot read the local stack at {url} ({error}); is `nurture local` running?") from error
    now = datetime.fromisoformat(body["now"])
    return now, {month: {k: float(v) for k, v in counters.items()} for month, counters in body["months"].items()}


def from_stack(name: str, region: str | None, months: list[str]) -> dict[str, dict[str, float]]:
    """The counters of a deployed stack: its leads table (a fixed name, one stack per account and region)."""
    import boto3

    from nurture.adapters.metrics import MetricsTable

    session = boto3.session.Session(region_name=region)
    table = MetricsTable(session.client("dynamodb"), c.LEADS_TABLE)
    try:
        session.client("cloudformation").describe_stacks(StackName=name)
        return {month: table.month(month) for month in months}
    except Exception as error:  # credentials, region, a table not there: one line, not a traceback
        raise SourceError(f"cannot read the stack's metrics ({type(error).__name__}: {error})") from error


def running_local() -> str:
    from nurture.tools.rebuild import local_state_path

    path = local_state_path()
    try:
        return str(json.loads(path.read_text())["url"])
    except (OSError, ValueError, KeyError) as error:
        raise SourceError(
            "no `nurture local` is running here: start one, or pass --local URL or --stack NAME"
        ) from error


def report(args: argparse.Namespace, programme: Programme | None) -> int:
    from nurture.tools.report.figures import monthly_report

    try:
        if args.stack:
            month = args.month or datetime.now(UTC).strftime("%Y-%m")
            wanted = sorted({*previous_months(month, TREND_MONTHS), *([args.baseline] if args.baseline else [])})
            months = from_stack(args.stack, args.region, wanted)
        else:
            now, months = from_local(args.local or running_local())
            month = args.month or now.strftime("%Y-%m")
    except SourceError as error:
        print(f"nurture report: {error}", file=sys.stderr)
        return 1
    review = monthly_report(
        months, month, args.baseline, programme, aws_cost=args.aws_cost, content_cost=args.content_cost
    )
    if args.html is not None:
        from nurture.tools.report.html import render_html

        args.html.write_text(render_html(review), encoding="utf-8")
    if args.json:
        print(review.model_dump_json(indent=2))
    else:
        from rich.console import Console

        from nurture.tools.report.terminal import print_report

        # Piped or redirected (into meeting notes), rich would wrap every table at 80 columns: print them wide.
        print_report(review, Console() if sys.stdout.isatty() else Console(width=160))
        if args.html is not None:
            print(f"\nHTML report: {args.html}")
    return 0
