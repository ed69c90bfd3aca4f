"""Builds the real adapters from settings, once per process and only when first needed.

Handlers call `ports()`, `content()` and `sender()`; tests and the local stack replace ports and content
with `override()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from nurture.constants import ENV_ALERTS_TOPIC_ARN, ENV_OPERATIONS_TOPIC_ARN, ENV_SLACK_WEBHOOK_SECRET
from nurture.domain.tokens import Purpose, Signer
from nurture.pipeline.content import CachedContent
from nurture.pipeline.ports import Ports
from nurture.runtime import clients as aws
from nurture.runtime.settings import settings

if TYPE_CHECKING:
    from nurture.pipeline.alerts import SalesHandoffService
    from nurture.pipeline.content_check import ContentCheck
    from nurture.pipeline.email_feedback import EmailFeedback
    from nurture.pipeline.send import Sender
    from nurture.pipeline.send_guard import SendGuard

_overrides: dict[str, object] = {}
# The signing key is read at most every five minutes: a rotated key reaches every function within that.
SIGNING_KEY_MAX_AGE = 300


@dataclass(frozen=True)
class SecretSigner(Signer):
    """Signs and verifies with the key in the Secrets Manager secret `secret_id` (`{"signing_key": "..."}`),
    read through powertools parameters on first use and cached: only the functions that sign or verify links
    (the sender, the API) read it, and only they may."""

    key: bytes = b""
    secret_id: str = ""

    def sign(self, purpose: Purpose, lead_id: str, now: datetime) -> str:
        return Signer(self._key()).sign(purpose, lead_id, now)

    def verify(self, token: str, purpose: Purpose, now: datetime) -> str:
        return Signer(self._key()).verify(token, purpose, now)

    def _key(self) -> bytes:
        from aws_lambda_powertools.utilities import parameters

        secret: Any = parameters.get_secret(self.secret_id, transform="json", max_age=SIGNING_KEY_MAX_AGE)
        key = secret.get("signing_key") if isinstance(secret, dict) else None
        if not isinstance(key, str) or not key:
            raise RuntimeError(f"the secret {self.secret_id} has no signing_key")
        return key.encode()


@cache
def _ports() -> Ports:
    # The adapters are imported here, not at the top: they import botocore, which the first client loads anyway,
    # and a handler's import stays free of it (docs/benchmarks.md, "Cold import time").
    from nurture.adapters.content import S3Content, SnsNotifier
    from nurture.adapters.dynamodb import EventTable, IdempotencyTable, LeadTable
    from nurture.adapters.eventbridge import EventBridgeBus
    from nurture.adapters.metrics import MetricsTable
    from nurture.adapters.owners import OwnerTable
    from nurture.adapters.ses import SesMailer
    from nurture.adapters.sqs import SqsSendQueue

    s = settings()
    return Ports(
        events=EventTable(aws.client("dynamodb"), s.events_table),
        leads=LeadTable(aws.client("dynamodb"), s.leads_table, s.due_shards),
        bus=EventBridgeBus(aws.client("events"), s.event_bus),
        queue=SqsSendQueue(aws.client("sqs"), s.send_queue_url),
        mailer=SesMailer(aws.client("sesv2"), s.from_address, s.ses_configuration_set),
        content=S3Content(aws.client("s3"), s.content_bucket),
        due_shards=s.due_shards,
        signer=SecretSigner(secret_id=s.signing_key_secret),
        public_url=s.public_url,
        # Only the functions given the topic (the sender, the content check) tell operations anything.
        operations=SnsNotifier(aws.client("sns"), s.operations_topic_arn) if s.operations_topic_arn else None,
        owners=OwnerTable(aws.client("dynamodb"), s.leads_table),
        metrics=MetricsTable(aws.client("dynamodb"), s.leads_table),
        idempotency=IdempotencyTable(aws.client("dynamodb"), s.idempotency_table),  # erasure deletes a lead's
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


@cache
def _sales_handoff() -> SalesHandoffService:
    # Imported here: only the alerts function needs Slack, SNS alerts and idempotency.
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    from nurture.adapters.alerts import LeadQualifiedChannel, SnsAlertChannel
    from nurture.adapters.slack import SlackAlertChannel
    from nurture.pipeline.alerts import AlertChannel, SalesHandoffService
    from nurture.runtime.settings import SettingsError

    s = settings()
    if not s.alerts_topic_arn or not s.slack_webhook_secret:
        raise SettingsError(
            f"the alerts function needs {ENV_ALERTS_TOPIC_ARN} and {ENV_SLACK_WEBHOOK_SECRET}, which are not both set"
        )
    secret_id = s.slack_webhook_secret

    def slack_webhook_url() -> str | None:
        from aws_lambda_powertools.utilities import parameters

        secret: Any = parameters.get_secret(secret_id, transform="json", max_age=SIGNING_KEY_MAX_AGE)
        url = secret.get("webhook_url") if isinstance(secret, dict) else None
        return url if isinstance(url, str) and url else None

    persistence = DynamoDBPersistenceLayer(table_name=s.idempotency_table, boto3_client=aws.client("dynamodb"))
    channels: list[AlertChannel] = [
        SnsAlertChannel(aws.client("sns"), s.alerts_topic_arn),
        SlackAlertChannel(slack_webhook_url),
        LeadQualifiedChannel(aws.client("events"), s.event_bus),
    ]
    owners = ports().owners
    assert owners is not None
    return SalesHandoffService(ports().leads, owners, channels, persistence, s.public_url)


def sales_handoff() -> SalesHandoffService:
    """The alerts use case: owners in the leads table, SNS, Slack and the bus, each delivery once."""
    return _sales_handoff()


def content_check() -> ContentCheck:
    """The upload check: the content bucket and the operations topic (a setting only its function has)."""
    from nurture.adapters.content import S3ContentStore, SnsNotifier
    from nurture.pipeline.content_check import ContentCheck
    from nurture.runtime.settings import SettingsError

    s = settings()
    if not s.operations_topic_arn:
        raise SettingsError(f"the content check needs {ENV_OPERATIONS_TOPIC_ARN}, which is not set")
    return ContentCheck(
        S3ContentStore(aws.client("s3"), s.content_bucket), SnsNotifier(aws.client("sns"), s.operations_topic_arn)
    )


def email_feedback() -> EmailFeedback:
    """SES feedback (the email-events Lambda): the ports, the programme's scanner rule, and the mail log kept in the
    leads table. Built per call: the programme is cached by `content()`, and may have changed."""
    from nurture.adapters.mail_log import MailLogTable
    from nurture.pipeline.email_feedback import EmailFeedback

    mail_log = MailLogTable(aws.client("dynamodb"), settings().leads_table)
    return EmailFeedback(ports(), mail_log, content().programme())


def send_guard() -> SendGuard:
    """The automatic pause: the configuration set's sending switch (SES v2) and the operations topic."""
    from nurture.adapters.content import SnsNotifier
    from nurture.adapters.ses import SesSendingSwitch
    from nurture.pipeline.send_guard import SendGuard
    from nurture.runtime.settings import SettingsError

    s = settings()
    if not s.operations_topic_arn:
        raise SettingsError(f"the send guard needs {ENV_OPERATIONS_TOPIC_ARN}, which is not set")
    return SendGuard(
        SesSendingSwitch(aws.client("sesv2"), s.ses_configuration_set),
        SnsNotifier(aws.client("sns"), s.operations_topic_arn),
    )


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
    _sales_handoff.cache_clear()
    settings.cache_clear()
    aws.reset()
    # Secrets read through powertools are cached by name for minutes: another stack's write keys must not linger.
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()  # type: ignore[no-untyped-call]
