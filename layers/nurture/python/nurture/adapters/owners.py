"""Lead owners in the leads table: one `OWNER` item in each lead's partition, and one round-robin counter.

The owner item lives under `LEAD#<lead_id>`, so erasing a lead's partition removes it too; the counter holds no
personal data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from nurture import constants as c
from nurture.adapters.dynamodb import iso

OWNER = "OWNER"
TURN = "TURN"


class OwnerTable:
    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    @staticmethod
    def _key(lead_id: str) -> dict[str, Any]:
        return {c.LEADS_PK: {"S": f"LEAD#{lead_id}"}, c.LEADS_SK: {"S": OWNER}}

    def owner_of(self, lead_id: str) -> str | None:
        item = self.client.get_item(TableName=self.table, Key=self._key(lead_id), ConsistentRead=True).get("Item")
        return str(item["owner"]["S"]) if item else None

    def assign(self, lead_id: str, owner: str, at: datetime) -> str:
        """The first assignment wins: a concurrent or repeated one finds it and keeps it."""
        try:
            self.client.put_item(
                TableName=self.table,
                Item={**self._key(lead_id), "owner": {"S": owner}, "assigned_at": {"S": iso(at)}},
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": c.LEADS_PK},
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            kept = self.owner_of(lead_id)
            if kept is None:  # erased between the two requests: nobody owns it
                raise
            return kept
        return owner

    def next_turn(self) -> int:
        answer = self.client.update_item(
            TableName=self.table,
            Key={c.LEADS_PK: {"S": c.ROUND_ROBIN_PK}, c.LEADS_SK: {"S": TURN}},
            UpdateExpression="ADD #turn :one",
            ExpressionAttributeNames={"#turn": "turn"},
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="UPDATED_NEW",
        )
        return int(answer["Attributes"]["turn"]["N"]) - 1
