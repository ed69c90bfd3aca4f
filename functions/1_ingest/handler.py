"""API Gateway HTTP API -> the v1 routes: Segment-compatible ingestion and the admin lead routes.

The public path runs with Lambda SnapStart (infra/constructs/ingest.py): before the snapshot, `prime` builds what
the first request would (the resolver, the adapters and their clients, the tracer); after each restore,
`snapstart.after_restore` restores uniqueness. Outside Lambda the hooks are not registered and nothing changes.
"""

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from nurture.api.resolver import app
from nurture.runtime import snapstart, wiring
from nurture.runtime.observability import logger, metrics, tracer
from nurture.runtime.settings import settings

settings()  # a missing or invalid setting fails the cold start, naming its environment variable


def prime() -> None:
    """Before the snapshot: load and build what the first request would, without a network call or a secret."""
    import email_validator  # noqa: F401 - loaded by the first message with an email trait
    import iso3166  # noqa: F401 - loaded by the first message with a country trait
    from aws_lambda_powertools.utilities import parameters  # noqa: F401 - the write keys' reader (boto3)

    app()
    # The adapters and their boto3 clients. Creating a client sends no request to AWS, but resolves credentials
    # (in Lambda, from the environment); botocore refreshes them after a restore as it would anyway.
    wiring.ports()
    if tracer.enabled():
        tracer.tracer()  # the X-Ray SDK, botocore patched


snapstart.register(before_snapshot=prime, after_restore=snapstart.after_restore)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app().resolve(event, context)
