"""`nurture forget`: erase a lead (by email or id) from a deployed stack or a running `nurture local`, with the same
`Eraser` as `DELETE /v1/leads/{lead_id}`. Prints what was erased in counts, never the person's data."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from datetime import UTC, datetime
from typing import Any

from nurture import constants as c
from nurture.adapters.dynamodb import EventTable, IdempotencyTable, LeadTable
from nurture.domain.messages import as_utc
from nurture.pipeline.erase import Eraser, Erasure
from nurture.pipeline.ports import Ports
from nurture.tools.rebuild import Target, local_target, session_for, stack_target

# The idempotency table's logical id starts with its construct path (infra/constructs/storage.py).
IDEMPOTENCY_LOGICAL_PREFIX = "StorageIdempotency"


def forget(args: argparse.Namespace) -> int:
    import boto3

    session = boto3.session.Session(region_name=args.region)
    try:
        if args.stack:
            cloudformation = session.client("cloudformation")
            target = stack_target(cloudformation, args.stack, args.region)
            idempotency = idempotency_table(cloudformation, args.stack)
        else:
            target = local_target(args.endpoint_url, args.region)
            idempotency = c.IDEMPOTENCY_TABLE
    except LookupError as error:
        print(f"nurture forget: {error}", file=sys.stderr)
        return 1
    session = session_for(target, args.region)
    dynamodb = session.client("dynamodb", endpoint_url=target.endpoint_url, region_name=target.region)
    eraser = Eraser(_ports(dynamodb, target, idempotency))
    now = _now(target)
    erasure = eraser.forget(args.email, now) if args.email else eraser.erase(args.lead, now)
    if erasure is None:
        what = "that email" if args.email else "that id"
        print(f"nurture forget: no lead has {what} (never known, or erased already); nothing erased", file=sys.stderr)
        return 1
    print(describe(erasure))
    return 0


def describe(erasure: Erasure) -> str:
    return (
        f"erased {_n(erasure.leads, 'lead')}: {_n(erasure.events, 'event')}, {_n(erasure.profiles, 'profile link')}, "
        f"{_n(erasure.lead_items, 'lead item')} (state, send records, ...), "
        f"{_n(erasure.send_guards, 'send idempotency record')}"
    )


def _n(count: int, thing: str) -> str:
    return f"{count} {thing}{'' if count == 1 else 's'}"


def _ports(dynamodb: Any, target: Target, idempotency: str) -> Ports:
    """Only the stores: erasure publishes, queues and sends nothing."""
    unused: Any = None
    return Ports(
        events=EventTable(dynamodb, target.events_table),
        leads=LeadTable(dynamodb, target.leads_table),
        bus=unused,
        queue=unused,
        mailer=unused,
        content=unused,
        idempotency=IdempotencyTable(dynamodb, idempotency),
    )


def idempotency_table(cloudformation: Any, stack_name: str) -> str:
    """The physical name of a deployed stack's idempotency table (`nurture rebuild` needs no such table)."""
    resources = cloudformation.describe_stack_resources(StackName=stack_name)["StackResources"]
    tables = [r for r in resources if r["ResourceType"] == "AWS::DynamoDB::Table"]
    chosen = [r for r in tables if r["LogicalResourceId"].startswith(IDEMPOTENCY_LOGICAL_PREFIX)] or [
        r for r in tables if r.get("PhysicalResourceId") == c.IDEMPOTENCY_TABLE
    ]
    if len(chosen) != 1 or not chosen[0].get("PhysicalResourceId"):
        raise LookupError(f"stack {stack_name}: cannot tell which table is the idempotency table")
    return str(chosen[0]["PhysicalResourceId"])


def _now(target: Target) -> datetime:
    """The stack's clock (the month the anonymous counts go to). A local stack is drained first, so no message it
    accepted is still waiting to be scored when the lead is erased."""
    if target.local_url is None:
        return datetime.now(UTC)
    request = urllib.request.Request(f"{target.local_url}/_local/drain", method="POST")  # noqa: S310 - loopback
    with urllib.request.urlopen(request) as answer:  # noqa: S310 - loopback only
        return as_utc(datetime.fromisoformat(json.loads(answer.read())["now"]))
