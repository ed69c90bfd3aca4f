"""SQS send queue -> render and send each email through SES, at most once per lead, sequence and email."""

import warnings
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError
from aws_lambda_powertools.utilities.idempotency.serialization.pydantic import PydanticSerializer
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Json

from nurture.pipeline.ports import SendRequest
from nurture.pipeline.send import Delivery, deliver
from nurture.runtime import clients as aws
from nurture.runtime import clock, wiring
from nurture.runtime.observability import logger, metrics, tracer
from nurture.runtime.settings import settings

# A record stays "in progress" until it expires, not when the invocation's time runs out (we do not
# register the Lambda context): a crash mid-send never turns into a second send. At most once.
ONE_YEAR = 365 * 24 * 3600
warnings.filterwarnings("ignore", message="Couldn't determine the remaining time left")


class SendRecord(SqsRecordModel):
    body: Json[SendRequest]  # type: ignore[assignment]


processor = BatchProcessor(event_type=EventType.SQS, model=SendRecord)


@cache
def _deliver_once() -> Any:
    persistence = DynamoDBPersistenceLayer(table_name=settings().idempotency_table, boto3_client=aws.client("dynamodb"))
    config = IdempotencyConfig(event_key_jmespath="[lead_id, sequence, content_id]", expires_after_seconds=ONE_YEAR)

    @idempotent_function(
        data_keyword_argument="request",
        persistence_store=persistence,
        config=config,
        output_serializer=PydanticSerializer(model=Delivery),
    )
    def deliver_once(request: SendRequest) -> Delivery:
        return deliver(request, wiring.ports(), wiring.content(), clock.now())

    return deliver_once


def record_handler(record: SendRecord) -> None:
    try:
        _deliver_once()(request=record.body)
    except IdempotencyAlreadyInProgressError:
        metrics.add_metric(name="DuplicateSendsBlocked", unit="Count", value=1)
        logger.warning(
            "send already in progress or interrupted; not sending again", extra={"lead_id": record.body.lead_id}
        )


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
