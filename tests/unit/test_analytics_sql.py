"""The history SQL (nurture/tools/analytics/sql) on DuckDB over a small history: the join of messages to leads
(exported links, or a simulated lead named by its userId), the cut-off at the first sales status, the labels, the
monthly MQL-to-SQL; and `nurture export` from DynamoDB (moto) giving the same answers in JSON Lines and Parquet."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from nurture import constants as c
from nurture.adapters.dynamodb import EventTable, LeadTable
from nurture.domain.journey import Lead, SalesRecord
from nurture.domain.messages import segment_message
from nurture.pipeline.ports import StoredEvent, StoredLead
from nurture.tools.analytics.export import export
from nurture.tools.analytics.queries import query, questions
from nurture.tools.local.resources import TABLES


def at(day: str) -> str:
    return f"2026-{day}T10:00:00+00:00"


# Ann: exported lead L1, anonymous before she identified; accepted on 5 Jan, won on 2 Feb.
# Bob: a simulated lead (no `leads` row: his lead id is his userId); rejected on 20 Jan.
# Cat: only `engaged` (unlabelled) on 1 Feb. Dan: no outcome at all.
MESSAGES: list[dict[str, Any]] = [
    {
        "type": "page",
        "messageId": "m1",
        "anonymousId": "anon-1",
        "timestamp": at("01-03"),
        "properties": {"path": "/pricing"},
    },
    {
        "type": "identify",
        "messageId": "m2",
        "userId": "ann",
        "anonymousId": "anon-1",
        "timestamp": at("01-04"),
        "traits": {"email": "ann@contoso.example"},
    },
    {
        "type": "page",
        "messageId": "m3",
        "userId": "ann",
        "timestamp": at("01-04"),
        "properties": {"path": "/Pricing/"},
    },
    {
        "type": "track",
        "messageId": "m4",
        "userId": "ann",
        "timestamp": at("01-04"),
        "event": "Case Study Downloaded",
    },
    {
        "type": "page",
        "messageId": "m5",
        "userId": "ann",
        "timestamp": at("01-10"),
        "properties": {"path": "/blog/after"},
    },
    {
        "type": "page",
        "messageId": "m6",
        "userId": "bob",
        "timestamp": at("01-15"),
        "properties": {"path": "/product/tour"},
    },
    {
        "type": "page",
        "messageId": "m7",
        "userId": "bob",
        "timestamp": at("01-16"),
        "context": {"page": {"path": "/products/api"}},
    },
    {"type": "track", "messageId": "m8", "userId": "cat", "timestamp": at("01-20"), "event": "Email Opened"},
    {"type": "track", "messageId": "m9", "userId": "dan", "timestamp": at("01-20"), "event": "Demo Requested"},
]
OUTCOMES: list[dict[str, Any]] = [
    {"lead_id": "L1", "status": "accepted", "at": at("01-05"), "amount": None},
    {"lead_id": "bob", "status": "rejected", "at": at("01-20"), "amount": None},
    {"lead_id": "L1", "status": "won", "at": at("02-02"), "amount": 5000.0},
    {"lead_id": "cat", "status": "engaged", "at": at("02-01"), "amount": None},
]
LEADS: list[dict[str, Any]] = [{"lead_id": "L1", "user_ids": ["ann"], "anonymous_ids": ["anon-1"]}]

FEATURES = [
    ("L1", "page /pricing", 2),
    ("L1", "track Case Study Downloaded", 1),
    ("bob", "page /product", 1),
    ("bob", "page /products", 1),
    ("cat", "track Email Opened", 1),
]
LABELS = [("L1", 1, "won", 5000.0), ("bob", 0, "rejected", None), ("cat", None, "engaged", None)]
MONTHS = [(2026, 1, 2, 1, 0.5), (2026, 2, 1, 0, 0.0)]


def write(directory: Path, table: str, rows: list[dict[str, Any]]) -> None:
    (directory / f"{table}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def history(tmp_path: Path) -> Path:
    write(tmp_path, "messages", MESSAGES)
    write(tmp_path, "outcomes", OUTCOMES)
    write(tmp_path, "leads", LEADS)
    return tmp_path


def answers(directory: Path) -> dict[str, list[tuple[Any, ...]]]:
    features = query(directory, "lead_features")[1]
    outcomes = [(r[0], r[2], r[3], r[4]) for r in query(directory, "outcomes")[1]]
    months = query(directory, "mql_to_sql_by_month")[1]
    return {"lead_features": features, "outcomes": outcomes, "mql_to_sql_by_month": months}


def test_there_is_one_sql_file_per_question():
    assert questions() == ["lead_features", "mql_to_sql_by_month", "outcomes"]


def test_lead_features_join_anonymous_history_and_stop_at_the_first_sales_status(history):
    # Ann's anonymous pricing view counts (her profile link), her blog read after acceptance does not; Bob has no
    # leads row and joins by his userId; Dan has no outcome and is not a row.
    assert query(history, "lead_features")[1] == FEATURES


def test_outcomes_label_each_lead_by_its_first_decisive_status(history):
    names, found = query(history, "outcomes")
    assert names == ["lead_id", "first_status_at", "label", "latest_status", "won_amount"]
    assert [(r[0], r[2], r[3], r[4]) for r in found] == LABELS
    assert found[0][1] == datetime(2026, 1, 5, 10)  # UTC, without a zone (as in Athena)


def test_mql_to_sql_by_month_counts_leads_in_the_month_sales_first_touched_them(history):
    names, found = query(history, "mql_to_sql_by_month")
    assert names == ["year", "month", "mqls", "sqls", "mql_to_sql"]
    assert [tuple(r) for r in found] == MONTHS


@pytest.fixture
def stack():
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="eu-west-1")
        for name in (c.EVENTS_TABLE, c.LEADS_TABLE):
            dynamodb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", **TABLES[name])
        events, leads = EventTable(dynamodb, c.EVENTS_TABLE), LeadTable(dynamodb, c.LEADS_TABLE)
        for raw in MESSAGES:
            message = segment_message.validate_python(raw)
            events.put(StoredEvent(profile_id=message.profile_ids[0], message=message, received_at=message.timestamp))
        by_lead: dict[str, list[SalesRecord]] = {}
        for o in OUTCOMES:
            record = SalesRecord(status=o["status"], at=datetime.fromisoformat(o["at"]), amount=o["amount"])
            by_lead.setdefault(o["lead_id"], []).append(record)
        profiles = {"L1": {"u#ann", "a#anon-1"}, "bob": {"u#bob"}, "cat": {"u#cat"}, "dan": {"u#dan"}}
        for lead_id, owned in profiles.items():
            lead = Lead(lead_id=lead_id, sales_history=tuple(by_lead.get(lead_id, ())))
            leads.save(StoredLead(lead=lead, version=1, profiles=frozenset(owned)), None, frozenset(owned))
        yield dynamodb


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_an_export_from_dynamodb_answers_every_question_as_the_history_it_holds(stack, tmp_path, fmt):
    # Given the fixture's history in the stack's tables (the real adapters' item layout)
    # When it is exported
    counts = export(stack, c.EVENTS_TABLE, c.LEADS_TABLE, tmp_path, fmt)
    # Then every message, lead and outcome is in it, private to this user, and the SQL gives the same answers
    assert counts == {"messages": len(MESSAGES), "leads": 4, "outcomes": len(OUTCOMES)}
    for table in ("messages", "leads", "outcomes"):
        assert (tmp_path / f"{table}.{fmt}").stat().st_mode & 0o077 == 0
    assert answers(tmp_path) == {"lead_features": FEATURES, "outcomes": LABELS, "mql_to_sql_by_month": MONTHS}


def test_an_export_can_leave_traits_out_and_start_at_a_day(stack, tmp_path):
    counts = export(stack, c.EVENTS_TABLE, c.LEADS_TABLE, tmp_path, "jsonl", datetime(2026, 1, 15, tzinfo=UTC), True)
    assert counts["messages"] == 4  # m6..m9
    assert counts["outcomes"] == 3
    assert "ann@contoso.example" not in (tmp_path / "messages.jsonl").read_text()
    full = tmp_path / "full"
    export(stack, c.EVENTS_TABLE, c.LEADS_TABLE, full, "jsonl")
    assert "ann@contoso.example" in (full / "messages.jsonl").read_text()  # traits are personal data: documented


def test_the_calibrator_reads_a_parquet_export_as_it_reads_json_lines(stack, tmp_path):
    from nurture.domain.programme import load_programme
    from nurture.tools.analytics.calibrate import features
    from nurture.tools.cli import STARTER_PROGRAMME

    programme = load_programme(STARTER_PROGRAMME.read_text(encoding="utf-8"))
    for fmt in ("jsonl", "parquet"):
        export(stack, c.EVENTS_TABLE, c.LEADS_TABLE, tmp_path / fmt, fmt)
    jsonl, parquet = features(tmp_path / "jsonl", programme), features(tmp_path / "parquet", programme)
    assert jsonl == parquet
    # Ann (L1: two pricing views, one of them anonymous) and Bob are labelled; Cat is not; Dan has no outcome
    assert jsonl.labels == [1, 0]
    assert jsonl.features[0][jsonl.rules.index("pricing_page_visit")] == 2
    assert (jsonl.unlabelled, jsonl.unmatched_messages) == (1, 1)
