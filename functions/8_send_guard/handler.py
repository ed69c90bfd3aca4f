"""EventBridge "CloudWatch Alarm State Change" of an SES reputation pause alarm -> turn nurture sending off and tell
operations how to resume it (docs/operations.md, "Sending paused")."""

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from nurture.pipeline.send_guard import AlarmStateChange
from nurture.runtime import wiring
from nurture.runtime.observability import logger, tracer
from nurture.runtime.settings import settings

settings()  # a missing or invalid setting fails the cold start, naming its environment variable


class AlarmEvent(EventBridgeModel):
    detail: AlarmStateChange


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@event_parser(model=AlarmEvent)
def handler(event: AlarmEvent, context: LambdaContext) -> dict[str, Any]:
    return asdict(wiring.send_guard().handle(event.detail))
