"""A lead receiving 100,000 page views in one day: its item stays bounded, it is scored per the daily limit,
flagged as probable automation, alerts sales once, and an opt-out after the flood applies at once.

The messages go through the real lead service onto the real `LeadTable` (moto in-process, `mock_aws`), in
stream-sized batches of 100 as the scorer receives them; every batch is one read and one conditional write.
The item's size is measured as DynamoDB counts it (`item_bytes`) after every batch.

Run: python -m tests.bench.flood  (prints the figures and records them in docs/benchmarks.md)
"""

from __future__ import annotations

import contextlib
import io
import os
import time
import uuid
from datetime import UTC, datetime, timedelta

import boto3
from moto import mock_aws

from nurture import constants as c
from nurture.adapters.dynamodb import LeadTable, item_bytes
from nurture.domain.programme import Stage
from nurture.pipeline.leads import LeadService
from nurture.tools.local.resources import REGION, TABLES
from tests.bench.record import record
from tests.fakes import FakeBus, fake_ports
from tests.support import identify, page, starter, track

VIEWS = 100_000
BATCH = 100  # the scorer's stream batch size
START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
SPACING = timedelta(days=1) / (VIEWS + 10)  # all within one day (UTC)


def main() -> None:
    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": REGION})
    os.environ.pop("AWS_ENDPOINT_URL", None)
    programme = starter()
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        client.create_table(TableName=c.LEADS_TABLE, BillingMode="PAY_PER_REQUEST", **TABLES[c.LEADS_TABLE])
        table = LeadTable(client, c.LEADS_TABLE)
        ports = fake_ports()
        bus = FakeBus()
        ports.leads, ports.bus = table, bus
        service = LeadService(ports, programme)
        with contextlib.redirect_stdout(io.StringIO()):  # powertools' metrics print their flush
            lead_id = service.receive([identify(START, user="bot-1", company_size=240)], START)
            largest = 0
            started = time.perf_counter()
            for first in range(0, VIEWS, BATCH):
                batch = [
                    page("/pricing", START + (i + 1) * SPACING, user="bot-1", message_id=str(uuid.uuid4()))
                    for i in range(first, first + BATCH)
                ]
                service.receive(batch, batch[-1].timestamp)
                stored = table.get(lead_id)
                assert stored is not None
                largest = max(largest, item_bytes(table._item(stored)))
            seconds = time.perf_counter() - started
            end = START + (VIEWS + 1) * SPACING
            service.receive([track("Unsubscribed", end + SPACING, user="bot-1")], end + SPACING)
        stored = table.get(lead_id)
        assert stored is not None
        lead = stored.lead
        intent = lead.intent(programme, end)
        alerts = [e for e in bus.published if getattr(e, "kind", None) == "alert"]
    assert largest < c.LEAD_ITEM_BUDGET_BYTES, largest
    assert intent == programme.intent.max_per_day * 30, intent
    assert lead.automation_flagged_at is not None
    assert lead.stage is Stage.OPTED_OUT
    figures = [
        ("page views in one day (UTC), in batches of 100", f"{VIEWS:,}"),
        ("largest lead item after any batch (budget 64 KB)", f"{largest / 1024:.1f} KB"),
        ("lead item after the flood", f"{item_bytes(table._item(stored)) / 1024:.1f} KB"),
        ("intent after the flood (20 visits a day count, 30 points each)", f"{intent:.0f}"),
        (
            "flagged as probable automation in the batch ending at page view",
            f"{_flagged_at(lead.automation_flagged_at):,}",
        ),
        ("sales alerts published", f"{len(alerts)}"),
        ("stage after an Unsubscribed that follows the flood", lead.stage.value),
        ("time to apply the flood (moto in-process)", f"{seconds:.1f} s ({VIEWS / seconds:,.0f} messages/s)"),
    ]
    width = max(len(name) for name, _ in figures)
    for name, value in figures:
        print(f"{name:<{width}}  {value}")
    body = "| figure | value |\n| --- | --- |\n" + "\n".join(f"| {name} | {value} |" for name, value in figures)
    record("flood", "A lead receiving 100,000 page views in a day", body)


def _flagged_at(at: datetime | None) -> int:
    assert at is not None
    return round((at - START) / SPACING)


if __name__ == "__main__":
    main()
