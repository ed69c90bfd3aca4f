"""SES feedback: SQS queue (an EventBridge rule on SES's records) -> the lead's events, scanner clicks flagged."""

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, Json

from nurture.domain.email_feedback import SesEvent
from nurture.pipeline.email_feedback import Recorded, peers_of
from nurture.runtime import clock, wiring
from nurture.runtime.observability import logger, metrics, tracer
from nurture.runtime.settings import settings

settings()  # a missing or invalid setting fails the cold start, naming its environment variable


class SesEventBridgeEvent(BaseModel):
    """The EventBridge event SES publishes for a record: only what this function reads of it (powertools'
    `EventBridgeModel` also requires `account`, which moto's rule targets leave out)."""

    model_config = ConfigDict(populate_by_name=True)

    source: str
    detail_type: str = Field(alias="detail-type")
    detail: SesEvent


class SesEventRecord(SqsRecordModel):
    body: Json[SesEventBridgeEvent]


processor = BatchProcessor(event_type=EventType.SQS, model=SesEventRecord)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    # The batch's other records of the same email, so a scanner's burst is judged as a whole.
    peers = peers_of(_json(record.get("body")) for record in event.get("Records", []))

    def record_handler(record: SesEventRecord) -> Recorded:
        return wiring.email_feedback().record(record.body.detail, clock.now(), peers)

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)


def _json(body: Any) -> Any:
    try:
        return json.loads(body) if isinstance(body, str) else None
    except ValueError:
        return None
