"""Builds the real adapters from settings, once per process and only when first needed.

Handlers call `ports()`, `content()` and `sender()`; tests and the local stack replace ports and content
with `override()`.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from nurture.adapters.content import S3Content
from nurture.adapters.dynamodb import EventTable, LeadTable
from nurture.adapters.eventbridge import EventBridgeBus
from nurture.adapters.ses import SesMailer
from nurture.adapters.sqs import SqsSendQueue
from nurture.pipeline.content import CachedContent
from nurture.pipeline.ports import Ports
from nurture.runtime import clients as aws
from nurture.runtime.settings import settings

if TYPE_CHECKING:
    from nurture.pipeline.send import Sender

_overrides: dict[str, object] = {}


@cache
def _ports() -> Ports:
    s = settings()
    return Ports(
        events=EventTable(aws.client("dynamodb"), s.events_table),
        leads=LeadTable(aws.client("dynamodb"), s.leads_table, s.due_shards),
        bus=EventBridgeBus(aws.client("events"), s.event_bus),
        queue=SqsSendQueue(aws.client("sqs"), s.send_queue_url),
        mailer=SesMailer(aws.client("sesv2"), s.from_address, s.ses_configuration_set),
        content=S3Content(aws.client("s3"), s.content_bucket),
        due_shards=s.due_shards,
    )


@cache
def _content() -> CachedContent:
    return CachedContent(ports().content)


@cache
def _sender() -> Sender:
    # Imported here: only the sender needs powertools idempotency, and the other handlers' cold starts stay lean.
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    from nurture.pipeline.send import Sender

    persistence = DynamoDBPersistenceLayer(table_name=settings().idempotency_table, boto3_client=aws.client("dynamodb"))
    return Sender(persistence)


def ports() -> Ports:
    override = _overrides.get("ports")
    return override if isinstance(override, Ports) else _ports()


def content() -> CachedContent:
    override = _overrides.get("content")
    return override if isinstance(override, CachedContent) else _content()


def sender() -> Sender:
    """The at-most-once send use case, its idempotency records in the DynamoDB idempotency table."""
    return _sender()


def override(ports: Ports | None = None, content: CachedContent | None = None) -> None:
    """Swap what the handlers use (tests, the local stack). `override()` with nothing restores the real ones."""
    _overrides.clear()
    if ports is not None:
        _overrides["ports"] = ports
    if content is not None:
        _overrides["content"] = content


def reset() -> None:
    """Forget everything built from the environment (after the environment changed)."""
    _overrides.clear()
    _ports.cache_clear()
    _content.cache_clear()
    _sender.cache_clear()
    settings.cache_clear()
    aws.reset()
    # Secrets read through powertools are cached by name for minutes: another stack's write keys must not linger.
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()  # type: ignore[no-untyped-call]
