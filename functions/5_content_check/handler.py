"""S3 "Object Created" / "Object Deleted" events (via EventBridge) for the content bucket's `incoming/` prefix -> lint
the changed file with the live folder; publish it, or tell the marketer why not on the operations topic."""

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.parser.models import S3EventNotificationEventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from nurture.runtime import wiring
from nurture.runtime.observability import logger, metrics, tracer
from nurture.runtime.settings import settings

settings()  # a missing or invalid setting fails the cold start, naming its environment variable


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=S3EventNotificationEventBridgeModel)
def handler(event: S3EventNotificationEventBridgeModel, context: LambdaContext) -> dict[str, Any]:
    check = wiring.content_check()
    key = event.detail.object.key
    results = check.removed(key) if event.detail_type == "Object Deleted" else check.uploaded(key)
    return {"checked": [{**asdict(r), "problems": [str(p) for p in r.problems]} for r in results]}
