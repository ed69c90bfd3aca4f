"""Sending one nurture email: check the lead may still get it, render it, send it, record it, at most once.

`Sender` is the use case the sender Lambda calls: it wraps `deliver` in powertools idempotency keyed on
(lead, sequence, email), so a retried, redelivered or duplicated queue message never sends twice. The
persistence layer (DynamoDB in AWS) is built by `nurture.runtime.wiring` and injected: no boto3 here.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Literal

from aws_lambda_powertools.utilities.idempotency import BasePersistenceLayer, IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError
from aws_lambda_powertools.utilities.idempotency.serialization.pydantic import PydanticSerializer
from pydantic import BaseModel, Field

from nurture.domain.content import ContentError
from nurture.domain.journey import EmailSkipped, Measured
from nurture.domain.metrics import sent_counts
from nurture.domain.rendering import RenderContext, RenderedEmail, choose_variant, render
from nurture.pipeline.content import CachedContent
from nurture.pipeline.leads import LeadService
from nurture.pipeline.ports import MetricsStore, NotSent, Ports, SendRequest, SentRecord
from nurture.runtime.observability import Metric, count, logger

# A send's idempotency record is kept for a year: the same email is never sent to a lead twice in that time.
ONE_YEAR = 365 * 24 * 3600
# The records' keys are `send#<hash of lead, sequence, email>`, whatever the function or module is called.
KEY_PREFIX = "send"
BROKEN_KEY_PREFIX = "broken"  # an operations message about a broken email version: once per version
# The Lambda context is deliberately not registered (see `Sender`), and powertools warns about it on each call.
warnings.filterwarnings("ignore", message="Couldn't determine the remaining time left")


BROKEN = "broken content"


class Delivery(BaseModel):
    # "unconfirmed": the mailer's answer was lost after the email may have gone out; never sent again.
    outcome: Literal["sent", "unconfirmed", "skipped", "blocked"]
    reason: str = ""
    provider_id: str = ""
    detail: str = Field(default="", description="Why an email did not render: for marketers, never a lead's data")


class BrokenEmail(BaseModel):
    """An email version that did not render for a lead: operations hear of it once per version."""

    content_id: str
    version: str
    detail: str


def deliver(request: SendRequest, ports: Ports, content: CachedContent, now: datetime) -> Delivery:
    stored = ports.leads.get(request.lead_id)
    lead = stored.lead if stored else None
    if lead is None or lead.email is None:
        return _skipped("the lead no longer exists", request)
    if lead.stage is not request.sequence:
        # It opted out, was suppressed or moved on since the dispatcher queued this: never send stale email.
        return _skipped(f"the lead is now in {lead.stage}", request)
    programme = content.programme()
    unsubscribe_url = f"{ports.public_url}/v1/unsubscribe?token={ports.signer.sign('unsubscribe', lead.lead_id, now)}"
    try:
        email = content.email(request.content_id)
        context = RenderContext(
            sender=programme.sender,
            profiling=programme.profiling,
            unsubscribe_url=unsubscribe_url,
            link_token=ports.signer.sign("click", lead.lead_id, now),
            variant=choose_variant(lead.lead_id, email),
        )
        rendered = render(email, lead.traits, context)
    except (ContentError, FileNotFoundError) as error:
        count(Metric.BROKEN_EMAILS)
        logger.error("email not sent: broken content", extra={**_ids(request), "error": str(error)})
        return _skipped(BROKEN, request, detail=str(error))
    try:
        provider_id = ports.mailer.send(
            to=lead.email,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            # SES returns the tags with every delivery, open, click and bounce (pipeline/email_feedback.py).
            tags={
                "sequence": request.sequence.value,
                "content_id": request.content_id,
                "lead_id": lead.lead_id,
                "variant": str(rendered.variant),
            },
            # RFC 8058 one-click unsubscribe: Gmail and Yahoo require both from bulk senders.
            headers={"List-Unsubscribe": f"<{unsubscribe_url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
        )
    except NotSent:
        raise  # nothing went out: the send is released and the queue retries it
    except Exception:
        # The email may have gone out. Completing the send (rather than raising, which would release it for a
        # retry) makes a lost email possible and a duplicate impossible, and the loss is counted, not silent.
        count(Metric.SENDS_UNCONFIRMED)
        logger.exception("email may have been sent; its answer was lost: not sending again", extra=_ids(request))
        _record(ports, request, rendered, now, provider_id="")
        return Delivery(outcome="unconfirmed", reason="the mailer's answer was lost")
    _record(ports, request, rendered, now, provider_id)
    _count_sent(ports, request, rendered.variant, now)
    count(Metric.EMAILS_SENT)
    return Delivery(outcome="sent", provider_id=provider_id)


def _count_sent(ports: Ports, request: SendRequest, variant: int, now: datetime) -> None:
    """Count the email for the monthly review (per email and subject variant). It is out already: a failure to
    count it is logged, never raised (which would release the send for a retry)."""
    if ports.metrics is None:
        return
    counts = sent_counts(request.sequence, request.content_id, variant, now)
    try:
        ports.metrics.add([Measured(lead_id=request.lead_id, at=now, counts=tuple(counts))])
    except Exception:
        logger.exception("email sent but not counted for the monthly review", extra=_ids(request))


def _record(ports: Ports, request: SendRequest, rendered: RenderedEmail, now: datetime, provider_id: str) -> None:
    """Record what went out (an empty provider id: unconfirmed). The email is out already: a failure to record
    it must not release the send for a retry, so it is counted and logged instead of raised."""
    record = SentRecord(
        lead_id=request.lead_id,
        sequence=request.sequence,
        content_id=request.content_id,
        subject=rendered.subject,
        sent_at=now,
        provider_id=provider_id,
        variant=rendered.variant,
    )
    try:
        ports.leads.record_send(record)
    except Exception:
        count(Metric.SEND_RECORDS_LOST)
        logger.exception("email sent but its send record was not written", extra=_ids(request))


def _tell_operations(problem: BrokenEmail, ports: Ports) -> bool:
    """Tell marketers, on the operations topic, that an email version does not render for some leads."""
    if ports.operations is None:
        return False
    ports.operations.publish(
        f"Email {problem.content_id} did not render for a lead"[:100],
        f"The email {problem.content_id} (version {problem.version or 'unknown'}) did not render for a lead, so it "
        f"was not sent; the lead gets the sequence's next email instead.\n\n{problem.detail}\n\n"
        "Fix it and upload it again (`nurture content lint` and `nurture content preview` show the problem). "
        "You hear of each version once.",
    )
    return True


def _ids(request: SendRequest) -> dict[str, str]:
    return {"lead_id": request.lead_id, "sequence": request.sequence.value, "content_id": request.content_id}


def _skipped(reason: str, request: SendRequest, detail: str = "") -> Delivery:
    count(Metric.SENDS_SKIPPED)
    logger.info("send skipped", extra={"lead_id": request.lead_id, "content_id": request.content_id, "reason": reason})
    return Delivery(outcome="skipped", reason=reason, detail=detail)


class HeldCounts:
    """The counts for the monthly review of one sender invocation, held and added together at its end: one
    UpdateItem per month and counter group for the batch, not one per email. At most once, as every count: an
    invocation cut short loses its counts (the emails are out; their send records say so)."""

    def __init__(self, store: MetricsStore) -> None:
        self.store = store
        self.held: list[Measured] = []

    def add(self, measured: Sequence[Measured]) -> None:
        self.held += measured

    def month(self, month: str) -> dict[str, float]:
        return self.store.month(month)

    def flush(self) -> None:
        held, self.held = self.held, []
        if not held:
            return
        try:
            self.store.add(held)
        except Exception:
            logger.exception("emails sent but not counted for the monthly review", extra={"count": len(held)})


class Sender:
    """Delivers each send request at most once per lead, sequence and email.

    The idempotency record is written "in progress" before anything is read or sent, and completed with the
    `Delivery` afterwards; a request that finds a completed record gets that `Delivery` back and sends nothing.
    The Lambda context is deliberately not registered, so an in-progress record does not expire with the
    invocation: a send interrupted by a crash or a timeout stays "in progress" for a year, and the email is
    lost rather than sent twice. A request that finds its record in progress (a concurrent delivery of the
    same request, or an interrupted one) is a blocked duplicate: counted, logged, and not sent.
    """

    def __init__(self, persistence: BasePersistenceLayer) -> None:
        # powertools configures a persistence layer once, for the first function that uses it (its key path
        # included): the operations notice gets its own, unconfigured copy of the same store.
        notices = copy.copy(persistence)
        config = IdempotencyConfig(event_key_jmespath="[lead_id, sequence, content_id]", expires_after_seconds=ONE_YEAR)
        self._deliver_once = idempotent_function(
            deliver,
            data_keyword_argument="request",
            persistence_store=persistence,
            config=config,
            output_serializer=PydanticSerializer(model=Delivery),
            key_prefix=KEY_PREFIX,
        )
        # Per thread: the local stack (and tests) may run two sender invocations at once in one process.
        self._local = threading.local()
        self._tell_operations_once = idempotent_function(
            _tell_operations,
            data_keyword_argument="problem",
            persistence_store=notices,
            config=IdempotencyConfig(event_key_jmespath="[content_id, version]", expires_after_seconds=ONE_YEAR),
            key_prefix=BROKEN_KEY_PREFIX,
        )

    @contextmanager
    def counting_together(self, ports: Ports) -> Iterator[None]:
        """Within the block (one invocation's batch), the emails' counts are added together at its end."""
        if ports.metrics is None:
            yield
            return
        counts = self._local.counts = HeldCounts(ports.metrics)
        try:
            yield
        finally:
            self._local.counts = None
            counts.flush()

    def send(self, request: SendRequest, ports: Ports, content: CachedContent, now: datetime) -> Delivery:
        counts: HeldCounts | None = getattr(self._local, "counts", None)
        if counts is not None:
            ports = dataclasses.replace(ports, metrics=counts)
        try:
            delivery: Delivery = self._deliver_once(request=request, ports=ports, content=content, now=now)
        except IdempotencyAlreadyInProgressError:
            count(Metric.DUPLICATE_SENDS_BLOCKED)
            logger.warning(
                "send already in progress or interrupted; not sending again",
                extra={"lead_id": request.lead_id, "content_id": request.content_id},
            )
            return Delivery(outcome="blocked", reason="already in progress or interrupted")
        if delivery.reason == BROKEN:
            # Not counted as sent: the lead gets the sequence's next email. (A redelivery of this request gets the
            # same Delivery back and repeats both steps, which change nothing the second time.)
            self._take_back(request, ports, content, now)
            problem = BrokenEmail(
                content_id=request.content_id, version=content.version(request.content_id), detail=delivery.detail
            )
            self._tell_operations_once(problem=problem, ports=ports)
        return delivery

    @staticmethod
    def _take_back(request: SendRequest, ports: Ports, content: CachedContent, now: datetime) -> None:
        skipped = EmailSkipped(sequence=request.sequence, content_id=request.content_id, reason=BROKEN)
        try:
            LeadService(ports, content.programme()).apply(request.lead_id, [skipped], now)
        except Exception:  # the lead keeps the email as decided, and waits for the sequence's next one
            logger.exception("a broken email could not be taken back from the lead", extra=_ids(request))
