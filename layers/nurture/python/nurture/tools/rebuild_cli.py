"""`nurture rebuild`'s command line: find the stack, read its programme, run `tools/rebuild.py` with a progress bar."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from nurture.adapters.content import S3Content
from nurture.adapters.eventbridge import EventBridgeBus
from nurture.adapters.sqs import SqsSendQueue
from nurture.domain.messages import as_utc
from nurture.domain.programme import load_programme
from nurture.tools.rebuild import (
    Rebuild,
    Target,
    find_target,
    format_report,
    read_programme_from,
    run,
    session_for,
    tables,
)


def rebuild(args: argparse.Namespace) -> int:
    try:
        target = find_target(args.stack, args.endpoint_url, args.region)
    except LookupError as error:
        print(f"nurture rebuild: {error}", file=sys.stderr)
        return 1
    session = session_for(target, args.region)

    def client(service: str) -> Any:
        return session.client(service, endpoint_url=target.endpoint_url, region_name=target.region)

    dynamodb = client("dynamodb")
    if not target.send_queue_url.startswith("http"):  # a local stack's queue, by name
        target = replace(
            target, send_queue_url=client("sqs").get_queue_url(QueueName=target.send_queue_url)["QueueUrl"]
        )
    if target.content_bucket is None:
        print("nurture rebuild: the stack has no ContentBucketName output to read its programme from", file=sys.stderr)
        return 1
    current = read_programme_from(S3Content(client("s3"), target.content_bucket))
    programme = current
    if args.programme is not None:
        programme = load_programme(args.programme.read_text(encoding="utf-8"), source=str(args.programme))
    events, leads = tables(dynamodb, target)
    job = Rebuild(
        events,
        leads,
        EventBridgeBus(client("events"), target.event_bus),
        SqsSendQueue(client("sqs"), target.send_queue_url),
        programme=programme,
        current=current,
        now=args.now or _now(target),
        dry_run=args.dry_run,
    )
    print(
        f"rebuilding {'every lead' if args.all else ', '.join(args.lead)} with programme {programme.revision}"
        f"{' (proposed)' if programme.revision != current.revision else ''} at {job.now:%Y-%m-%d %H:%M}Z"
        f"{' (dry run)' if args.dry_run else ''}",
        file=sys.stderr,
    )
    try:
        with _progress() as progress:
            report = run(dynamodb, target, job, None if args.all else args.lead, progress)
    except LookupError as error:
        print(f"nurture rebuild: {error}", file=sys.stderr)
        return 1
    for line in format_report(report):
        print(line)
    return 0


def _now(target: Target) -> datetime:
    """The stack's clock: a local stack's own (it may be manual), asked of its front door; else the machine's."""
    if target.local_url is None:
        return datetime.now(UTC)
    request = urllib.request.Request(f"{target.local_url}/_local/drain", method="POST")  # noqa: S310 - loopback
    with urllib.request.urlopen(request) as answer:  # noqa: S310 - loopback only
        return as_utc(datetime.fromisoformat(json.loads(answer.read())["now"]))


@contextmanager
def _progress() -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr (rich, from the dev/tools extras), or nothing when rich is not installed."""
    try:
        from rich.progress import Progress
    except ImportError:
        yield lambda done, total: None
        return
    from rich.console import Console

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("leads", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update
