"""DynamoDB stream of the events table -> score new events, move leads, publish what changed."""

from functools import cached_property
from typing import Annotated, Any, Self

from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.parser.models import (
    DynamoDBStreamChangedRecordModel,
    DynamoDBStreamRecordModel,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    Json,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from nurture.domain.messages import Message
from nurture.pipeline.leads import LeadService
from nurture.pipeline.ports import StoredEvent
from nurture.pipeline.score import CoalescingScorer, ScoringProcessor
from nurture.runtime import clock, wiring
from nurture.runtime.observability import logger, metrics, tracer
from nurture.runtime.settings import settings

settings()  # a missing or invalid setting fails the cold start, naming its environment variable


def _text(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError("ISO-8601 text, as the ingest stores it")  # not a number read as epoch seconds
    return value


class EventItem(BaseModel):
    """An events-table item, as the stream's NewImage holds it (deserialised by powertools)."""

    pk: str
    message: Json[Message]
    received_at: Annotated[AwareDatetime, BeforeValidator(_text)]


class EventChange(DynamoDBStreamChangedRecordModel):
    NewImage: EventItem | None = None

    @field_validator("Keys", "NewImage", "OldImage", mode="wrap")
    @classmethod
    def _attribute_values(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """powertools' deserialiser raises TypeError or AttributeError on what is not an attribute value
        ({"S": ...}): make that this record's validation error, not the batch's crash."""
        try:
            return handler(value)
        except (AttributeError, IndexError, KeyError, TypeError) as error:
            raise ValueError(f"not DynamoDB attribute values: {error!r}") from error


class EventRecord(DynamoDBStreamRecordModel):
    """A record of the events table's stream (NEW_IMAGE): an accepted message inserted, or expired by TTL."""

    dynamodb: EventChange

    @model_validator(mode="after")
    def _an_insert_carries_its_item(self) -> Self:
        if self.eventName == "INSERT" and self.dynamodb.NewImage is None:
            raise ValueError("an INSERT record without its NewImage")
        return self

    @cached_property
    def new_event(self) -> StoredEvent | None:
        item = self.dynamodb.NewImage
        if self.eventName != "INSERT" or item is None:
            return None  # TTL expiry removes events (and nothing modifies them): nothing to score
        return StoredEvent(profile_id=item.pk, message=item.message, received_at=item.received_at)


def _scorer(events: list[StoredEvent]) -> CoalescingScorer:
    return CoalescingScorer(LeadService(wiring.ports(), wiring.content().programme()), events, clock.now())


processor = ScoringProcessor(model=EventRecord, scorer=_scorer)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return processor.score(event, context)
