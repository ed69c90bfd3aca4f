"""EventBridge schedule (every 5 minutes) -> tick the leads that are due: send, time out, suppress."""

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from nurture.pipeline.dispatch import dispatch
from nurture.pipeline.leads import LeadService
from nurture.runtime import clock, wiring
from nurture.runtime.observability import logger, metrics, tracer
from nurture.runtime.settings import settings

settings()  # a missing or invalid setting fails the cold start, naming its environment variable


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=EventBridgeModel)
def handler(event: EventBridgeModel, context: LambdaContext) -> dict[str, Any]:
    # Ticks choose each lead's next email by its topics and persona: the programme with its emails' tags.
    service = LeadService(wiring.ports(), wiring.content().programme(email_tags=True))
    report = dispatch(service, clock.now(), time_left=lambda: context.get_remaining_time_in_millis() / 1000)
    logger.info("dispatched", extra=asdict(report))
    return asdict(report)
