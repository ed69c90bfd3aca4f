"""DynamoDB stream of the events table -> score new events, move leads, publish what changed."""

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
    DynamoDBRecordEventName,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from nurture.adapters.dynamodb import stored_event
from nurture.pipeline.leads import LeadService
from nurture.pipeline.ports import StoredEvent
from nurture.pipeline.score import CoalescingScorer
from nurture.runtime import clock, wiring
from nurture.runtime.observability import logger, metrics, tracer

processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


def _new_event(record: DynamoDBRecord) -> StoredEvent | None:
    if record.event_name is not DynamoDBRecordEventName.INSERT or record.dynamodb is None:
        return None  # TTL expiry removes events; nothing to score
    return stored_event(record.dynamodb.new_image)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    readable = []
    for raw in event.get("Records", []):
        try:
            parsed = _new_event(DynamoDBRecord(raw))
        except ValueError:
            continue  # reported as this record's failure by the processor below
        if parsed is not None:
            readable.append(parsed)
    service = LeadService(wiring.ports(), wiring.content().programme())
    scorer = CoalescingScorer(service, readable, clock.now())

    def record_handler(record: DynamoDBRecord) -> None:
        parsed = _new_event(record)
        if parsed is not None:
            scorer.handle(parsed)

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
