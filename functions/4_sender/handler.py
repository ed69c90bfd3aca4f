"""SQS send queue -> render and send each email through SES, at most once per lead, sequence and email."""

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Json

from nurture.pipeline.ports import SendRequest
from nurture.runtime import clock, wiring
from nurture.runtime.observability import logger, metrics, tracer
from nurture.runtime.settings import settings

# The send use case (powertools idempotency, boto3, the renderer) loads with the first record (wiring.sender()), not
# at import; its `Delivery` is needed here only as an annotation.
if TYPE_CHECKING:
    from nurture.pipeline.send import Delivery
else:
    Delivery = Any

settings()  # a missing or invalid setting fails the cold start, naming its environment variable


class SendRecord(SqsRecordModel):
    body: Json[SendRequest]


processor = BatchProcessor(event_type=EventType.SQS, model=SendRecord)


def record_handler(record: SendRecord) -> Delivery:
    return wiring.sender().send(record.body, wiring.ports(), wiring.content(), clock.now())


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    with wiring.sender().counting_together(wiring.ports()):  # the batch's counts: one write at its end
        return process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
