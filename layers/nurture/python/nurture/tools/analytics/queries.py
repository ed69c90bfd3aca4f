"""The history SQL on DuckDB: the base views over a history directory's files (JSON Lines or Parquet), then one
query file per question from `sql/`. In Athena the same files run over views of the DynamoDB export
(docs/analytics.md, "Athena"); only the base views differ.

    python -m nurture.tools.analytics.queries HISTORY_DIR lead_features
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path
from typing import Any

SQL = resources.files("nurture.tools.analytics") / "sql"
# Shared views every question may read, created in this order after the base views.
VIEWS = ("lead_messages",)

_MESSAGE_COLUMNS = (
    "{'type': 'VARCHAR', 'messageId': 'VARCHAR', 'userId': 'VARCHAR', 'anonymousId': 'VARCHAR', "
    "'timestamp': 'VARCHAR', 'event': 'VARCHAR', 'properties': 'JSON', 'context': 'JSON'}"
)
_OUTCOME_COLUMNS = "{'lead_id': 'VARCHAR', 'status': 'VARCHAR', 'at': 'VARCHAR', 'amount': 'DOUBLE'}"
_LEAD_COLUMNS = "{'lead_id': 'VARCHAR', 'user_ids': 'VARCHAR[]', 'anonymous_ids': 'VARCHAR[]'}"


def questions() -> list[str]:
    return sorted(f.name.removesuffix(".sql") for f in SQL.iterdir() if f.name.endswith(".sql"))


def text(name: str) -> str:
    return (SQL / f"{name}.sql").read_text(encoding="utf-8")


def connect(history: Path) -> Any:
    """A DuckDB connection with the base views `messages`, `outcomes` and `lead_profiles` over `history`, and the
    shared views of `sql/views/`."""
    import duckdb

    db = duckdb.connect()
    db.execute("SET TimeZone = 'UTC'")  # months and days are UTC, as the engine's metrics count them
    for statement in base_views(history):
        db.execute(statement)
    for view in VIEWS:
        db.execute(f"CREATE VIEW {view} AS {(SQL / 'views' / f'{view}.sql').read_text(encoding='utf-8')}")
    return db


def query(history: Path, name: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    with connect(history) as db:
        cursor = db.execute(text(name))
        return [d[0] for d in cursor.description], cursor.fetchall()


def base_views(history: Path) -> list[str]:
    """`messages(message_id, type, user_id, anonymous_id, occurred_at, event, path)`,
    `outcomes(lead_id, status, occurred_at, amount)`
    and `lead_profiles(lead_id, kind, profile_id)` (kind `u`: a userId, `a`: an anonymousId), from whichever files
    the directory has. Times are TIMESTAMP in UTC (no zone), as Athena's are. An outcome's lead with no `leads`
    row is its own userId (a simulated history). Only file names (quoted) and our own column lists go into the
    statements: no data."""
    messages = _source(history, "messages", _MESSAGE_COLUMNS)
    if messages.startswith("read_parquet"):
        page_path = "path"
    else:
        raw = "COALESCE(properties->>'path', context->'page'->>'path')"
        page_path = f"CASE WHEN type = 'page' THEN {raw} WHEN event = 'Email Link Clicked' THEN properties->>'path' END"
    leads = _source(history, "leads", _LEAD_COLUMNS)
    lead_rows = (
        f"SELECT * FROM {leads}"  # noqa: S608 - a read_json/read_parquet of our file name
        if leads
        else "SELECT NULL::VARCHAR AS lead_id, []::VARCHAR[] AS user_ids, []::VARCHAR[] AS anonymous_ids WHERE false"
    )
    return [
        f"""CREATE VIEW messages AS
            SELECT messageId AS message_id, type, userId AS user_id, anonymousId AS anonymous_id,
                   CAST(CAST("timestamp" AS TIMESTAMPTZ) AS TIMESTAMP) AS occurred_at, event,
                   CASE WHEN p = '/' THEN p ELSE rtrim(p, '/') END AS path
            FROM (SELECT *, lower({page_path}) AS p FROM {messages})""",  # noqa: S608 - our file names
        f"""CREATE VIEW outcomes AS
            SELECT lead_id, status, CAST(CAST("at" AS TIMESTAMPTZ) AS TIMESTAMP) AS occurred_at, amount
            FROM {_source(history, "outcomes", _OUTCOME_COLUMNS)}""",  # noqa: S608 - our file names
        f"CREATE VIEW exported_leads AS {lead_rows}",
        """CREATE VIEW lead_profiles AS
            SELECT lead_id, 'u' AS kind, unnest(user_ids) AS profile_id FROM exported_leads
            UNION ALL SELECT lead_id, 'a' AS kind, unnest(anonymous_ids) AS profile_id FROM exported_leads
            UNION ALL SELECT DISTINCT lead_id, 'u' AS kind, lead_id AS profile_id FROM outcomes
                      WHERE lead_id NOT IN (SELECT lead_id FROM exported_leads)""",
    ]


def _source(history: Path, table: str, columns: str) -> str:
    jsonl, parquet = history / f"{table}.jsonl", history / f"{table}.parquet"
    if jsonl.exists():
        return f"read_json('{_quoted(jsonl)}', format = 'newline_delimited', columns = {columns})"
    if parquet.exists():
        return f"read_parquet('{_quoted(parquet)}')"
    if table == "leads":
        return ""
    raise FileNotFoundError(f"{history}: neither {table}.jsonl nor {table}.parquet")


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in questions():
        print(f"usage: python -m nurture.tools.analytics.queries HISTORY_DIR {{{','.join(questions())}}}")
        return 2
    names, found = query(Path(argv[0]), argv[1])
    print("\t".join(names))
    for row in found:
        print("\t".join("" if v is None else str(v) for v in row))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
