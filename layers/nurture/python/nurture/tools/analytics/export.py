"""`nurture export`: a stack's history to a directory of JSON Lines (or Parquet, through DuckDB), for the SQL and
`nurture calibrate`: the events table's messages, each lead's profiles and its sales statuses.

The export holds personal data: identify messages carry the lead's traits (email, name, title, company). It is a
copy the erasure of `nurture forget` cannot reach: keep it only as long as the analysis needs it (docs/analytics.md,
"Personal data"), or leave the traits out with `--no-traits`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TextIO

from nurture import constants as c
from nurture.domain.journey import Lead
from nurture.domain.messages import normalise_path

TABLES = ("messages", "leads", "outcomes")
# Parquet columns of each table (the JSON Lines files hold the same rows; `message` is a Segment message's JSON).
PARQUET_COLUMNS = {
    "messages": {
        "type": "VARCHAR",
        "messageId": "VARCHAR",
        "userId": "VARCHAR",
        "anonymousId": "VARCHAR",
        "timestamp": "VARCHAR",
        "event": "VARCHAR",
        "path": "VARCHAR",
        "message": "VARCHAR",
    },
    "leads": {"lead_id": "VARCHAR", "user_ids": "VARCHAR[]", "anonymous_ids": "VARCHAR[]"},
    "outcomes": {"lead_id": "VARCHAR", "status": "VARCHAR", "at": "VARCHAR", "amount": "DOUBLE"},
}


def add_arguments(command: argparse.ArgumentParser) -> None:
    from nurture.tools.rebuild import add_target_options

    command.add_argument(
        "--since",
        type=date.fromisoformat,
        default=None,
        metavar="YYYY-MM-DD",
        help="messages and outcomes from this day",
    )
    command.add_argument("--out", type=Path, default=Path("history"), help="the directory to write (default: history)")
    command.add_argument("--format", choices=["jsonl", "parquet"], default="jsonl", help="default: jsonl")
    command.add_argument("--no-traits", action="store_true", help="leave identify messages' traits (personal data) out")
    add_target_options(command)


def main(args: argparse.Namespace) -> int:
    from nurture.tools.rebuild import find_target, session_for

    try:
        target = find_target(args.stack, args.endpoint_url, args.region)
    except LookupError as error:
        print(f"nurture export: {error}", file=sys.stderr)
        return 1
    session = session_for(target, args.region)
    dynamodb = session.client("dynamodb", endpoint_url=target.endpoint_url, region_name=target.region)
    since = datetime.combine(args.since, datetime.min.time(), UTC) if args.since else None
    with _progress() as progress:
        counts = export(
            dynamodb, target.events_table, target.leads_table, args.out, args.format, since, args.no_traits, progress
        )
    print(
        f"wrote {counts['messages']} messages, {counts['leads']} leads and {counts['outcomes']} sales outcomes to "
        f"{args.out}/ ({args.format}). It holds personal data{' (no traits)' if args.no_traits else ' (traits)'}: "
        "delete it when the analysis is done (docs/analytics.md)."
    )
    return 0


def export(
    dynamodb: Any,
    events_table: str,
    leads_table: str,
    out: Path,
    fmt: str,
    since: datetime | None = None,
    no_traits: bool = False,
    progress: Callable[[str, int], None] = lambda table, n: None,
) -> dict[str, int]:
    """Write the three tables to `out` (created private to this user); their row counts."""
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    counts = dict.fromkeys(TABLES, 0)
    with ExitStack() as stack:
        staging = Path(stack.enter_context(tempfile.TemporaryDirectory())) if fmt == "parquet" else out
        files: dict[str, TextIO] = {
            table: stack.enter_context(_private(staging / f"{table}.jsonl")) for table in TABLES
        }
        for item in _scan(dynamodb, events_table):
            row = _message_row(json.loads(item["message"]["S"]), no_traits)
            if since is not None and datetime.fromisoformat(row["timestamp"]) < since:
                continue
            files["messages"].write(json.dumps(row if fmt == "parquet" else json.loads(row["message"])) + "\n")
            counts["messages"] += 1
            progress("messages", counts["messages"])
        for item in _scan(dynamodb, leads_table):
            if not item[c.LEADS_PK]["S"].startswith("LEAD#") or item[c.LEADS_SK]["S"] != "STATE":
                continue  # profile links, send records, counters: the state item lists a lead's profiles
            lead = Lead.model_validate_json(item["lead"]["S"])
            profiles = sorted(item.get("profiles", {}).get("SS", []))
            files["leads"].write(
                json.dumps(
                    {
                        "lead_id": lead.lead_id,
                        "user_ids": [p.removeprefix("u#") for p in profiles if p.startswith("u#")],
                        "anonymous_ids": [p.removeprefix("a#") for p in profiles if p.startswith("a#")],
                    }
                )
                + "\n"
            )
            counts["leads"] += 1
            progress("leads", counts["leads"])
            for record in lead.sales_history:
                if since is not None and record.at < since:
                    continue
                outcome = {"lead_id": lead.lead_id, "status": record.status, "at": record.at.isoformat()}
                files["outcomes"].write(json.dumps(outcome | {"amount": record.amount}) + "\n")
                counts["outcomes"] += 1
        for file in files.values():
            file.flush()
        if fmt == "parquet":
            _to_parquet(staging, out)
    return counts


def _message_row(message: dict[str, Any], no_traits: bool) -> dict[str, Any]:
    """The Parquet row of a stored message: its keys for SQL (and its page path), and the message itself."""
    if no_traits and message.get("type") == "identify":
        message = {k: v for k, v in message.items() if k != "traits"}
    properties = message.get("properties") or {}
    page = (message.get("context") or {}).get("page") or {}
    path = (properties.get("path") or page.get("path")) if message.get("type") == "page" else None
    if message.get("event") == "Email Link Clicked":  # scores as a view of the page it leads to
        path = properties.get("path")
    return {
        "type": message.get("type"),
        "messageId": message.get("messageId"),
        "userId": message.get("userId"),
        "anonymousId": message.get("anonymousId"),
        "timestamp": message.get("timestamp"),
        "event": message.get("event"),
        "path": normalise_path(path) if isinstance(path, str) and path else None,
        "message": json.dumps(message, ensure_ascii=False),
    }


def _to_parquet(staging: Path, out: Path) -> None:
    import duckdb

    with duckdb.connect() as db:
        for table, columns in PARQUET_COLUMNS.items():
            spec = "{" + ", ".join(f"'{name}': '{kind}'" for name, kind in columns.items()) + "}"
            source = str(staging / f"{table}.jsonl")
            target = out / f"{table}.parquet"
            # The file names are ours (a temporary directory and --out), not input: the f-string builds no query
            # from data. DuckDB's COPY takes no parameter for its target.
            db.execute(
                f"COPY (SELECT * FROM read_json(?, format = 'newline_delimited', columns = {spec})) "  # noqa: S608
                f"TO '{_quoted(target)}' (FORMAT parquet)",
                [source],
            )
            target.chmod(0o600)


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")


@contextmanager
def _private(path: Path) -> Iterator[TextIO]:
    """A file only this user can read: the export holds personal data."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        yield file


def _scan(dynamodb: Any, table: str) -> Iterator[dict[str, Any]]:
    for page in dynamodb.get_paginator("scan").paginate(TableName=table):
        yield from page["Items"]


@contextmanager
def _progress() -> Iterator[Callable[[str, int], None]]:
    """Rows written so far, per table, on stderr (rich); nothing when rich is not installed."""
    try:
        from rich.console import Console
        from rich.progress import Progress
    except ImportError:
        yield lambda table, n: None
        return
    with Progress(console=Console(stderr=True), transient=True) as bar:
        tasks: dict[str, Any] = {}

        def update(table: str, n: int) -> None:
            if table not in tasks:
                tasks[table] = bar.add_task(f"exporting {table}", total=None)
            if n % 500 == 0:
                bar.update(tasks[table], completed=n)

        yield update
