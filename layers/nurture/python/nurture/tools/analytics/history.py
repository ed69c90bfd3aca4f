"""A history directory read back: its messages, sales outcomes and lead-profile links, joined lead by lead.

The files (docs/analytics.md, "The history format"): `messages.jsonl` (one stored Segment message a line),
`outcomes.jsonl` (one sales status a line: lead_id, status, at, amount) and, from `nurture export`, `leads.jsonl`
(each lead's profiles); or the same tables as `*.parquet`. The join: a message belongs to the lead whose profiles
hold its `u#<userId>` or `a#<anonymousId>`; an outcome's `lead_id` with no `leads` row is taken as a userId (the
simulator names leads by their userId), so simulated and exported histories both join.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from nurture.domain.messages import Message, as_utc, segment_message

OUTCOME_STATUSES = ("accepted", "rejected", "engaged", "demo_booked", "opportunity", "won", "lost")
POSITIVE = frozenset({"accepted", "won"})
NEGATIVE = frozenset({"rejected", "lost"})


@dataclass(frozen=True)
class Outcome:
    lead_id: str
    status: str
    at: datetime
    amount: float | None = None


def rows(directory: Path, table: str) -> Iterator[dict[str, Any]]:
    """The rows of `<table>.jsonl`, else `<table>.parquet` (through DuckDB), else none."""
    jsonl = directory / f"{table}.jsonl"
    if jsonl.exists():
        with jsonl.open(encoding="utf-8") as lines:
            for line in lines:
                if line.strip():
                    yield json.loads(line)
        return
    parquet = directory / f"{table}.parquet"
    if parquet.exists():
        import duckdb

        with duckdb.connect() as db:
            cursor = db.execute("SELECT * FROM read_parquet(?)", [str(parquet)])
            names = [d[0] for d in cursor.description]
            for values in cursor.fetchall():
                yield dict(zip(names, values, strict=True))


def read_messages(directory: Path) -> Iterator[Message]:
    for row in rows(directory, "messages"):
        # Parquet rows carry the whole message as JSON in `message` (the export's column); JSONL rows are it.
        raw = json.loads(row["message"]) if isinstance(row.get("message"), str) else row
        yield segment_message.validate_python(raw)


def read_outcomes(path: Path) -> list[Outcome]:
    """Sales statuses from `outcomes.jsonl`/`.parquet` in a directory, or from one JSON Lines file."""
    found = rows(path, "outcomes") if path.is_dir() else _lines(path)
    outcomes = []
    for row in found:
        status = str(row["status"])
        if status not in OUTCOME_STATUSES:
            raise ValueError(f"outcome for lead {row['lead_id']}: unknown status {status!r}")
        at = row["at"] if isinstance(row["at"], datetime) else datetime.fromisoformat(str(row["at"]))
        amount = row.get("amount")
        outcomes.append(Outcome(str(row["lead_id"]), status, as_utc(at), float(amount) if amount is not None else None))
    return sorted(outcomes, key=lambda o: (o.at, o.lead_id))


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def profile_links(directory: Path) -> dict[str, str]:
    """Profile key (`u#<userId>`, `a#<anonymousId>`) -> lead id, from `leads.jsonl` (written by `nurture export`)."""
    links: dict[str, str] = {}
    for row in rows(directory, "leads"):
        for user_id in row.get("user_ids") or ():
            links[f"u#{user_id}"] = str(row["lead_id"])
        for anonymous_id in row.get("anonymous_ids") or ():
            links[f"a#{anonymous_id}"] = str(row["lead_id"])
    return links


def lead_of(message: Message, links: dict[str, str], outcome_leads: set[str]) -> str | None:
    """The lead a message belongs to: by the exported links, else a userId that is itself an outcome's lead id."""
    for profile in message.profile_ids:
        if profile in links:
            return links[profile]
    if message.user_id is not None and message.user_id in outcome_leads:
        return message.user_id
    return None


def labels(outcomes: list[Outcome]) -> tuple[dict[str, int], dict[str, datetime]]:
    """Each lead's label (1: its first decisive status is accepted or won; 0: rejected or lost) and the time of its
    first status of any kind (the cut-off: only what the lead did before sales touched it is a feature). A lead with
    no decisive status (only engaged, demo_booked or opportunity) is unlabelled: left out of the fit."""
    label: dict[str, int] = {}
    first: dict[str, datetime] = {}
    for outcome in outcomes:  # oldest first
        first.setdefault(outcome.lead_id, outcome.at)
        if outcome.lead_id not in label and outcome.status in POSITIVE | NEGATIVE:
            label[outcome.lead_id] = 1 if outcome.status in POSITIVE else 0
    return label, first
