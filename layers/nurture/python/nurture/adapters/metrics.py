"""The monthly counts in the leads table: one item per month and counter group, counters as its attributes.

`METRICS#2026-11` / `email` holds every `email|...` counter of November, and so on: a month's report is one Query
of a few items, whatever the number of leads. Adding is DynamoDB's atomic `ADD`, so concurrent writers never lose
a count. No personal data: counters name stages, emails and statuses, never a lead.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from nurture import constants as c
from nurture.domain.journey import Measured
from nurture.domain.metrics import group_of

# An update expression may be 4 KB long: this many counters per UpdateItem keeps well under it.
COUNTERS_PER_UPDATE = 50


def month_key(month: str) -> str:
    return f"{c.METRICS_PK_PREFIX}{month}"


class MetricsTable:
    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    def add(self, measured: Sequence[Measured]) -> None:
        totals: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for effect in measured:
            for month, name, amount in effect.counts:
                totals[(month, group_of(name))][name] += amount
        for (month, group), counters in sorted(totals.items()):
            names = sorted(counters)
            for start in range(0, len(names), COUNTERS_PER_UPDATE):
                chunk = names[start : start + COUNTERS_PER_UPDATE]
                self.client.update_item(
                    TableName=self.table,
                    Key={c.LEADS_PK: {"S": month_key(month)}, c.LEADS_SK: {"S": group}},
                    UpdateExpression="ADD " + ", ".join(f"#n{i} :v{i}" for i in range(len(chunk))),
                    ExpressionAttributeNames={f"#n{i}": name for i, name in enumerate(chunk)},
                    ExpressionAttributeValues={
                        f":v{i}": {"N": str(Decimal(str(counters[name])))} for i, name in enumerate(chunk)
                    },
                )

    def month(self, month: str) -> dict[str, float]:
        totals: dict[str, float] = {}
        pages = self.client.get_paginator("query").paginate(
            TableName=self.table,
            KeyConditionExpression="#pk = :pk",
            ExpressionAttributeNames={"#pk": c.LEADS_PK},
            ExpressionAttributeValues={":pk": {"S": month_key(month)}},
            ConsistentRead=True,
        )
        for page in pages:
            for item in page["Items"]:
                for name, value in item.items():
                    if name not in (c.LEADS_PK, c.LEADS_SK) and "N" in value:
                        totals[name] = float(value["N"])
        return totals
