"""`Sales Alert` bus events (through the alerts queue) -> assign the lead's owner, alert sales on SNS and Slack,
and publish `Lead Qualified` for CRM connectors; each channel once per qualification."""

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Json

from nurture.domain.handoff import Alert, Qualification
from nurture.runtime import wiring
from nurture.runtime.observability import logger, metrics, tracer
from nurture.runtime.settings import settings

settings()  # a missing or invalid setting fails the cold start, naming its environment variable


class QualificationEvent(BaseModel):
    """The EventBridge event the rule puts on the queue; only its detail matters here."""

    model_config = ConfigDict(extra="ignore")

    detail: Qualification


class AlertRecord(SqsRecordModel):
    body: Json[QualificationEvent]


processor = BatchProcessor(event_type=EventType.SQS, model=AlertRecord)


def record_handler(record: AlertRecord) -> Alert | None:
    return wiring.sales_handoff().handle(record.body.detail, wiring.content().programme())


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    wiring.sales_handoff().register(context)
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
