"""The mail log on DynamoDB: what the email-events Lambda knows of each email (its delivery, its clicks).

Kept in the leads table under the lead's own partition (`LEAD#<lead id>`, sort key `MAIL#<ses message id>#<kind>#<record
key>`), so erasing a lead (every item of its partition) erases it too; DynamoDB's TTL removes it after a month.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from nurture import constants as c
from nurture.domain.messages import as_utc
from nurture.pipeline.email_feedback import MailEntry

MAIL = "MAIL#"


def _prefix(mail_id: str) -> str:
    return f"{MAIL}{mail_id}#"


class MailLogTable:
    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    def entries(self, lead_id: str, mail_id: str) -> list[MailEntry]:
        paginator = self.client.get_paginator("query")
        entries = []
        for page in paginator.paginate(
            TableName=self.table,
            KeyConditionExpression="#pk = :pk AND begins_with(#sk, :mail)",
            ExpressionAttributeNames={"#pk": c.LEADS_PK, "#sk": c.LEADS_SK},
            ExpressionAttributeValues={":pk": {"S": f"LEAD#{lead_id}"}, ":mail": {"S": _prefix(mail_id)}},
            ConsistentRead=True,
        ):
            for item in page["Items"]:
                entries.append(
                    MailEntry(
                        key=item["key"]["S"],
                        kind=item["kind"]["S"],
                        at=datetime.fromisoformat(item["at"]["S"]),
                        link=item.get("link", {}).get("S", ""),
                    )
                )
        return entries

    def note(self, lead_id: str, mail_id: str, entry: MailEntry, expires_at: datetime) -> None:
        # A plain put: the same record writes the same item, so a redelivery changes nothing.
        item = {
            c.LEADS_PK: {"S": f"LEAD#{lead_id}"},
            c.LEADS_SK: {"S": f"{_prefix(mail_id)}{entry.kind}#{entry.key}"},
            "key": {"S": entry.key},
            "kind": {"S": entry.kind},
            "at": {"S": as_utc(entry.at).isoformat()},
            c.LEADS_TTL_ATTRIBUTE: {"N": str(int(expires_at.timestamp()))},
        }
        if entry.link:
            item["link"] = {"S": entry.link}
        self.client.put_item(TableName=self.table, Item=item)
