"""DynamoDB adapters: the events table (source of truth) and the leads table (projection, links, sends).

Every write that can race is conditional: an event is stored once per messageId, a lead is written
only at the version it was read, and a profile is linked to one lead. Key layout: the
"DynamoDB design" section of docs/infrastructure.md.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from collections.abc import Collection, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from nurture import constants as c
from nurture.domain.journey import Lead
from nurture.domain.messages import as_utc
from nurture.domain.programme import Stage
from nurture.pipeline.ports import (
    Conflict,
    Pending,
    SentRecord,
    StoredEvent,
    StoredLead,
    effect_adapter,
    effects_adapter,
)

IDEMPOTENCY_KEY = "id"  # powertools' DynamoDBPersistenceLayer default key attribute (infra/constructs/storage.py)
_CONFLICTS = ("ConditionalCheckFailedException", "TransactionCanceledException")
STATE = "STATE"
LINK = "LINK"
SEND = "SEND#"  # a send record's sort key: SEND#<sequence>#<content id>


def lead_key(lead_id: str) -> dict[str, Any]:
    return {c.LEADS_PK: {"S": f"LEAD#{lead_id}"}, c.LEADS_SK: {"S": STATE}}


def profile_key(profile_id: str) -> dict[str, Any]:
    return {c.LEADS_PK: {"S": f"PROFILE#{profile_id}"}, c.LEADS_SK: {"S": LINK}}


def due_shard(lead_id: str, shards: int) -> str:
    """Spread due leads over `shards` partitions of the due index, stably per lead."""
    digest = hashlib.blake2b(lead_id.encode(), digest_size=4).digest()
    return str(int.from_bytes(digest, "big") % shards)


def iso(at: datetime) -> str:
    return as_utc(at).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _is_conflict(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") in _CONFLICTS


class EventTable:
    """The events table: one item per accepted message, keyed by profile and messageId."""

    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    def put(self, event: StoredEvent) -> bool:
        expires = event.received_at + timedelta(days=c.EVENTS_RETENTION_DAYS)
        item = {
            c.EVENTS_PK: {"S": event.profile_id},
            c.EVENTS_SK: {"S": event.message_id},
            "type": {"S": event.message.type},
            "received_at": {"S": iso(event.received_at)},
            "message": {"S": event.message.model_dump_json(by_alias=True, exclude_none=True)},
            c.EVENTS_TTL_ATTRIBUTE: {"N": str(int(expires.timestamp()))},
        }
        try:
            self.client.put_item(
                TableName=self.table,
                Item=item,
                ConditionExpression="attribute_not_exists(#sk)",
                ExpressionAttributeNames={"#sk": c.EVENTS_SK},
            )
        except ClientError as error:
            if _is_conflict(error):
                return False  # a retry of a message we already have
            raise
        return True

    def for_profiles(self, profile_ids: Iterable[str]) -> list[StoredEvent]:
        events = []
        paginator = self.client.get_paginator("query")
        for profile_id in profile_ids:
            for page in paginator.paginate(
                TableName=self.table,
                KeyConditionExpression="#pk = :pk",
                ExpressionAttributeNames={"#pk": c.EVENTS_PK},
                ExpressionAttributeValues={":pk": {"S": profile_id}},
            ):
                events += [stored_event(_plain(item)) for item in page["Items"]]
        return events

    def erase(self, profile_ids: Iterable[str]) -> list[str]:
        keys: list[dict[str, Any]] = []
        paginator = self.client.get_paginator("query")
        for profile_id in dict.fromkeys(profile_ids):
            for page in paginator.paginate(
                TableName=self.table,
                KeyConditionExpression="#pk = :pk",
                ProjectionExpression="#pk, #sk",
                ExpressionAttributeNames={"#pk": c.EVENTS_PK, "#sk": c.EVENTS_SK},
                ExpressionAttributeValues={":pk": {"S": profile_id}},
            ):
                keys += page["Items"]
        _delete_all(self.client, self.table, keys)
        return [key[c.EVENTS_SK]["S"] for key in keys]


def _delete_all(client: Any, table: str, keys: list[dict[str, Any]]) -> None:
    """Delete these items (by key), 25 to a request, until DynamoDB has processed every one."""
    for start in range(0, len(keys), 25):
        request: dict[str, Any] = {table: [{"DeleteRequest": {"Key": key}} for key in keys[start : start + 25]]}
        for attempt in itertools.count():
            request = client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
            if not request:
                break
            time.sleep(min(0.05 * 2**attempt, 2.0))  # throttled: DynamoDB asks to back off before the rest


def stored_event(image: Mapping[str, Any]) -> StoredEvent:
    """An events-table item, deserialised (as in a stream record's NewImage), back to the stored event."""
    return StoredEvent.model_validate(
        {
            "profile_id": image[c.EVENTS_PK],
            "message": json.loads(image["message"]),
            "received_at": image["received_at"],
        }
    )


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    """`{"S": "x"}` attribute values to plain values (event items hold only strings and numbers)."""
    return {name: next(iter(value.values())) for name, value in item.items()}


class LeadTable:
    """The leads table: lead state items, profile links and send records."""

    def __init__(self, client: Any, table: str, due_shards: int = c.DUE_SHARDS) -> None:
        self.client = client
        self.table = table
        self.due_shards = due_shards

    def get(self, lead_id: str) -> StoredLead | None:
        item = self.client.get_item(TableName=self.table, Key=lead_key(lead_id), ConsistentRead=True).get("Item")
        return _stored_lead(item) if item else None

    def find_by_email(self, email: str) -> StoredLead | None:
        found = self.client.query(
            TableName=self.table,
            IndexName=c.LEADS_BY_EMAIL_INDEX,
            KeyConditionExpression="#e = :e",
            ExpressionAttributeNames={"#e": c.LEADS_EMAIL_ATTRIBUTE},
            ExpressionAttributeValues={":e": {"S": email.strip().lower()}},
            Limit=1,
        )["Items"]
        return self.get(found[0][c.LEADS_PK]["S"].removeprefix("LEAD#")) if found else None

    def leads_for(self, profile_ids: Iterable[str]) -> dict[str, str]:
        keys = [profile_key(p) for p in dict.fromkeys(profile_ids)]
        links: dict[str, str] = {}
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {self.table: {"Keys": keys[start : start + 100], "ConsistentRead": True}}
            while request:
                answer = self.client.batch_get_item(RequestItems=request)
                for item in answer["Responses"].get(self.table, []):
                    links[item[c.LEADS_PK]["S"].removeprefix("PROFILE#")] = item["lead_id"]["S"]
                request = answer.get("UnprocessedKeys") or {}
        return links

    def save(
        self,
        stored: StoredLead,
        expected_version: int | None,
        new_profiles: frozenset[str] = frozenset(),
        absorbed: StoredLead | None = None,
    ) -> None:
        put = {"TableName": self.table, "Item": self._item(stored)}
        if expected_version is None:
            put |= {"ConditionExpression": "attribute_not_exists(#pk)", "ExpressionAttributeNames": {"#pk": c.LEADS_PK}}
        else:
            put |= {
                "ConditionExpression": "#v = :v",
                "ExpressionAttributeNames": {"#v": "version"},
                "ExpressionAttributeValues": {":v": {"N": str(expected_version)}},
            }
        try:
            if not new_profiles and absorbed is None:
                self.client.put_item(**put)
                return
            items: list[dict[str, Any]] = [{"Put": put}]
            for profile in sorted(new_profiles):
                link = {
                    "TableName": self.table,
                    "Item": {**profile_key(profile), "lead_id": {"S": stored.lead.lead_id}},
                }
                if absorbed is None or profile not in absorbed.profiles:
                    link |= {
                        "ConditionExpression": "attribute_not_exists(#pk) OR lead_id = :id",
                        "ExpressionAttributeNames": {"#pk": c.LEADS_PK},
                        "ExpressionAttributeValues": {":id": {"S": stored.lead.lead_id}},
                    }
                items.append({"Put": link})
            if absorbed is not None:
                items.append(
                    {
                        "Delete": {
                            "TableName": self.table,
                            "Key": lead_key(absorbed.lead.lead_id),
                            "ConditionExpression": "#v = :v",
                            "ExpressionAttributeNames": {"#v": "version"},
                            "ExpressionAttributeValues": {":v": {"N": str(absorbed.version)}},
                        }
                    }
                )
            self.client.transact_write_items(TransactItems=items)
        except ClientError as error:
            if _is_conflict(error):
                raise Conflict(stored.lead.lead_id) from error
            raise

    def clear_outbox(self, lead_id: str, effect_ids: Collection[str], version: int, due_at: datetime | None) -> None:
        if not effect_ids:
            return
        names = {f"#e{n}": effect for n, effect in enumerate(sorted(set(effect_ids)))}
        remove = ", ".join(f"outbox.{name}" for name in names)
        update: dict[str, Any] = {
            "TableName": self.table,
            "Key": lead_key(lead_id),
            "ExpressionAttributeNames": {**names, "#pk": c.LEADS_PK, "#v": "version"},
            "ExpressionAttributeValues": {":one": {"N": "1"}, ":map": {"S": "M"}},
        }
        exists = "attribute_exists(#pk) AND attribute_type(outbox, :map)"
        # The lead as this writer left it: remove the entries and set the due index, in one write.
        due = dict(update)
        due["ExpressionAttributeNames"] = {**names, "#pk": c.LEADS_PK, "#v": "version", "#d": c.LEADS_DUE_AT_ATTRIBUTE}
        due["ExpressionAttributeValues"] = {**update["ExpressionAttributeValues"], ":v": {"N": str(version)}}
        if due_at is None:
            due["ExpressionAttributeNames"]["#s"] = c.LEADS_DUE_SHARD_ATTRIBUTE
            due["UpdateExpression"] = f"REMOVE {remove}, #d, #s SET #v = #v + :one"
        else:
            due["ExpressionAttributeValues"][":d"] = {"S": iso(due_at)}
            due["UpdateExpression"] = f"REMOVE {remove} SET #v = #v + :one, #d = :d"
        due["ConditionExpression"] = f"{exists} AND #v = :v"
        if self._update(due):
            return
        # Written since: remove only the entries (the newer write set the due index, counting them at worst).
        update["UpdateExpression"] = f"REMOVE {remove} SET #v = #v + :one"
        update["ConditionExpression"] = exists
        self._update(update)  # false: the lead is gone (merged into another, or deleted)

    def _update(self, update: dict[str, Any]) -> bool:
        try:
            self.client.update_item(**update)
        except ClientError as error:
            if not _is_conflict(error):
                raise
            return False
        return True

    def due(self, shard: int, now: datetime) -> Iterator[str]:
        for lead_id, _ in self.due_entries(shard, now):
            yield lead_id

    def due_entries(self, shard: int, now: datetime) -> Iterator[tuple[str, datetime]]:
        """The due leads of a shard with when each became due (the index's sort key comes with every item, so
        the dispatcher knows the lag it leaves without asking the index again)."""
        paginator = self.client.get_paginator("query")
        for page in paginator.paginate(
            TableName=self.table,
            IndexName=c.LEADS_DUE_INDEX,
            KeyConditionExpression="#s = :s AND #d <= :now",
            ExpressionAttributeNames={"#s": c.LEADS_DUE_SHARD_ATTRIBUTE, "#d": c.LEADS_DUE_AT_ATTRIBUTE},
            ExpressionAttributeValues={":s": {"S": str(shard)}, ":now": {"S": iso(now)}},
        ):
            for item in page["Items"]:
                due_at = datetime.fromisoformat(item[c.LEADS_DUE_AT_ATTRIBUTE]["S"])
                yield item[c.LEADS_PK]["S"].removeprefix("LEAD#"), due_at

    def next_due(self, shard: int) -> datetime | None:
        """The earliest next action in a shard (the local stack uses it to skip idle ticks)."""
        items = self.client.query(
            TableName=self.table,
            IndexName=c.LEADS_DUE_INDEX,
            KeyConditionExpression="#s = :s",
            ExpressionAttributeNames={"#s": c.LEADS_DUE_SHARD_ATTRIBUTE},
            ExpressionAttributeValues={":s": {"S": str(shard)}},
            Limit=1,
            ScanIndexForward=True,
        )["Items"]
        return datetime.fromisoformat(items[0][c.LEADS_DUE_AT_ATTRIBUTE]["S"]) if items else None

    def record_send(self, record: SentRecord) -> None:
        self.client.put_item(
            TableName=self.table,
            Item={
                c.LEADS_PK: {"S": f"LEAD#{record.lead_id}"},
                c.LEADS_SK: {"S": f"{SEND}{record.sequence.value}#{record.content_id}"},
                "subject": {"S": record.subject},
                "sent_at": {"S": iso(record.sent_at)},
                "provider_id": {"S": record.provider_id},
                "variant": {"N": str(record.variant)},
            },
        )

    def send_records(self, lead_id: str) -> list[SentRecord]:
        records: list[SentRecord] = []
        paginator = self.client.get_paginator("query")
        for page in paginator.paginate(
            TableName=self.table,
            KeyConditionExpression="#pk = :pk AND begins_with(#sk, :send)",
            ExpressionAttributeNames={"#pk": c.LEADS_PK, "#sk": c.LEADS_SK},
            ExpressionAttributeValues={":pk": {"S": f"LEAD#{lead_id}"}, ":send": {"S": SEND}},
            ConsistentRead=True,
        ):
            records += [_sent_record(lead_id, item) for item in page["Items"]]
        return records

    def lead_ids_by_email(self, email: str) -> list[str]:
        ids = []
        paginator = self.client.get_paginator("query")
        for page in paginator.paginate(
            TableName=self.table,
            IndexName=c.LEADS_BY_EMAIL_INDEX,
            KeyConditionExpression="#e = :e",
            ExpressionAttributeNames={"#e": c.LEADS_EMAIL_ATTRIBUTE},
            ExpressionAttributeValues={":e": {"S": email.strip().lower()}},
        ):
            ids += [item[c.LEADS_PK]["S"].removeprefix("LEAD#") for item in page["Items"]]
        return list(dict.fromkeys(ids))

    def erase_lead(self, lead_id: str) -> int:
        # The whole partition, whatever it holds now (send records, and items other features keep per lead).
        keys = []
        paginator = self.client.get_paginator("query")
        for page in paginator.paginate(
            TableName=self.table,
            KeyConditionExpression="#pk = :pk",
            ProjectionExpression="#pk, #sk",
            ExpressionAttributeNames={"#pk": c.LEADS_PK, "#sk": c.LEADS_SK},
            ExpressionAttributeValues={":pk": {"S": f"LEAD#{lead_id}"}},
            ConsistentRead=True,
        ):
            keys += page["Items"]
        # One DeleteItem each (a partition holds tens of items), so the API may delete here but never write; the
        # state last: until then, the lead is found and an erasure cut short can be asked again.
        keys.sort(key=lambda key: key[c.LEADS_SK]["S"] == STATE)
        for key in keys:
            self.client.delete_item(TableName=self.table, Key=key)
        return len(keys)

    def unlink(self, profile_ids: Iterable[str], lead_id: str) -> int:
        unlinked = 0
        for profile_id in dict.fromkeys(profile_ids):
            delete = {
                "TableName": self.table,
                "Key": profile_key(profile_id),
                "ConditionExpression": "lead_id = :id",
                "ExpressionAttributeValues": {":id": {"S": lead_id}},
            }
            try:
                self.client.delete_item(**delete)
            except ClientError as error:
                if not _is_conflict(error):
                    raise
                continue  # no link, or one to another lead: not this lead's to delete
            unlinked += 1
        return unlinked

    def count_erasure(self, month: str, counts: Mapping[str, int]) -> None:
        names = {f"#n{n}": name for n, name in enumerate(sorted(counts))}
        values = {f":v{n}": {"N": str(counts[name])} for n, name in enumerate(sorted(counts))}
        self.client.update_item(
            TableName=self.table,
            Key={c.LEADS_PK: {"S": c.LEADS_ERASURES_PK}, c.LEADS_SK: {"S": month}},
            UpdateExpression="ADD " + ", ".join(f"{name} {value}" for name, value in zip(names, values, strict=True)),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def _item(self, stored: StoredLead) -> dict[str, Any]:
        lead = stored.lead
        item: dict[str, Any] = {
            **lead_key(lead.lead_id),
            "version": {"N": str(stored.version)},
            "lead": {"S": lead.model_dump_json(exclude_defaults=True)},
            "profiles": {"SS": sorted(stored.profiles)},
        }
        # Always a map (maybe empty), keyed by effect id, so `clear_outbox` can remove single entries.
        item["outbox"] = {"M": {p.id: {"S": _pending_json(n, p)} for n, p in enumerate(stored.outbox)}}
        if lead.email:
            item[c.LEADS_EMAIL_ATTRIBUTE] = {"S": lead.email}
        if stored.due_at is not None:
            item[c.LEADS_DUE_SHARD_ATTRIBUTE] = {"S": due_shard(lead.lead_id, self.due_shards)}
            item[c.LEADS_DUE_AT_ATTRIBUTE] = {"S": iso(stored.due_at)}
        return item


def item_bytes(item: Mapping[str, Any]) -> int:
    """An item's size as DynamoDB counts it (attribute names plus values in UTF-8), for the lead item budget."""
    return sum(len(name.encode()) + _value_bytes(value) for name, value in item.items())


def _value_bytes(value: Mapping[str, Any]) -> int:
    [(kind, inner)] = value.items()
    if kind == "M":
        return 3 + sum(len(k.encode()) + _value_bytes(v) + 1 for k, v in inner.items())
    if kind in ("SS", "NS"):
        return sum(len(str(v).encode()) for v in inner)
    if kind == "N":
        return len(str(inner).lstrip("-").lstrip("0") or "0") // 2 + 1
    return len(str(inner).encode())


_LEGACY_SAVED_AT = datetime(2000, 1, 1, tzinfo=UTC)


def _pending_json(position: int, pending: Pending) -> str:
    effect = effect_adapter.dump_python(pending.effect, mode="json")
    return json.dumps({"n": position, "saved_at": iso(pending.saved_at), "effect": effect})


def _outbox(attribute: dict[str, Any] | None) -> list[Pending]:
    """The outbox entries in the order they were saved. An outbox written before entries had ids (one JSON
    string) reads as long expired, so the next writer publishes it."""
    if attribute is None:
        return []
    if "S" in attribute:
        return [Pending(e, _LEGACY_SAVED_AT) for e in effects_adapter.validate_json(attribute["S"])]
    entries = [json.loads(value["S"]) for value in attribute["M"].values()]
    entries.sort(key=lambda e: (e["saved_at"], e["n"]))
    return [
        Pending(effect_adapter.validate_python(e["effect"]), datetime.fromisoformat(e["saved_at"])) for e in entries
    ]


def _stored_lead(item: dict[str, Any]) -> StoredLead:
    outbox = _outbox(item.get("outbox"))
    due_at = item.get(c.LEADS_DUE_AT_ATTRIBUTE)
    return StoredLead(
        lead=Lead.model_validate_json(item["lead"]["S"]),
        version=int(item["version"]["N"]),
        profiles=frozenset(item["profiles"]["SS"]),
        outbox=tuple(outbox),
        due_at=datetime.fromisoformat(due_at["S"]) if due_at else None,
    )


def _sent_record(lead_id: str, item: dict[str, Any]) -> SentRecord:
    sequence, content_id = item[c.LEADS_SK]["S"].removeprefix(SEND).split("#", 1)
    return SentRecord(
        lead_id=lead_id,
        sequence=Stage(sequence),
        content_id=content_id,
        subject=item["subject"]["S"],
        sent_at=datetime.fromisoformat(item["sent_at"]["S"]),
        provider_id=item["provider_id"]["S"],
        variant=int(item.get("variant", {"N": "0"})["N"]),  # records written before A/B subjects: the only subject
    )


class IdempotencyTable:
    """The powertools idempotency table, as erasure sees it: records deleted by key (powertools' `id` attribute)."""

    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    def delete(self, keys: Collection[str]) -> int:
        deleted = 0
        for key in sorted(set(keys)):
            answer = self.client.delete_item(
                TableName=self.table, Key={IDEMPOTENCY_KEY: {"S": key}}, ReturnValues="ALL_OLD"
            )
            deleted += bool(answer.get("Attributes"))
        return deleted
