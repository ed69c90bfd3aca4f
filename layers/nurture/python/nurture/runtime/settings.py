"""Runtime settings of the Lambdas and the local stack, read once from the environment and validated.

What a deployment decides (table and bucket names, the bus, the queue, the sender address, the write
keys' secret, the links' signing key secret, the public URL, the CORS origins) has no default: the CDK
stack (`infra/stack.py`) gives every function every one and the local stack
(`nurture.tools.local.resources`) its own, so a function missing one fails at cold start, naming the
variable, instead of starting and writing to a table that is not there.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from nurture import constants as c

Name = Annotated[str, Field(min_length=1)]


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    events_table: Name
    leads_table: Name
    idempotency_table: Name
    content_bucket: Name
    event_bus: Name
    send_queue_url: Name
    ses_configuration_set: Name
    from_address: Name
    write_keys_secret: Name = Field(description="Secrets Manager id of {'write_keys': [...]}")
    allowed_origins: list[str] = Field(description="CORS origins; set but empty when no browser sends events")
    signing_key_secret: Name = Field(description="Secrets Manager id of {'signing_key': '...'} (email links)")
    public_url: Annotated[str, Field(pattern=r"^https?://[^/?#\s]+(/[^?#\s]*)?$")] = Field(
        description="The API's base URL, which links in emails point at (deployed: the HTTP API's URL)"
    )
    due_shards: int = Field(default=c.DUE_SHARDS, gt=0, le=256)
    operations_topic_arn: str | None = Field(
        default=None, description="Only the content check publishes (rejected content); it fails without it"
    )
    alerts_topic_arn: str | None = Field(default=None, description="The sales alerts topic: the alerts function only")
    slack_webhook_secret: str | None = Field(
        default=None, description="Secrets Manager id of {'webhook_url': '...'}: the alerts function only"
    )
    admin_token: str | None = Field(default=None, description="Local stack only: the bearer token for admin routes")

    @field_validator("public_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")  # links are `{public_url}/v1/...`


ENVIRONMENT = {
    "events_table": c.ENV_EVENTS_TABLE,
    "leads_table": c.ENV_LEADS_TABLE,
    "idempotency_table": c.ENV_IDEMPOTENCY_TABLE,
    "content_bucket": c.ENV_CONTENT_BUCKET,
    "event_bus": c.ENV_EVENT_BUS,
    "send_queue_url": c.ENV_SEND_QUEUE_URL,
    "ses_configuration_set": c.ENV_SES_CONFIGURATION_SET,
    "from_address": c.ENV_FROM_ADDRESS,
    "write_keys_secret": c.ENV_WRITE_KEYS_SECRET,
    "signing_key_secret": c.ENV_SIGNING_KEY_SECRET,
    "public_url": c.ENV_PUBLIC_URL,
    "allowed_origins": c.ENV_ALLOWED_ORIGINS,
    "due_shards": c.ENV_DUE_SHARDS,
    "operations_topic_arn": c.ENV_OPERATIONS_TOPIC_ARN,
    "alerts_topic_arn": c.ENV_ALERTS_TOPIC_ARN,
    "slack_webhook_secret": c.ENV_SLACK_WEBHOOK_SECRET,
    "admin_token": c.ENV_LOCAL_ADMIN_TOKEN,
}
"""Each setting's environment variable."""

REQUIRED = tuple(env for field, env in ENVIRONMENT.items() if Settings.model_fields[field].is_required())
"""The environment variables every deployed function must have."""


class SettingsError(RuntimeError):
    """The environment lacks a required variable, or holds one the settings model rejects."""


@cache
def settings() -> Settings:
    """The settings, from environment variables named in `nurture.constants`. Fails loudly at cold start."""
    missing = [env for env in REQUIRED if env not in os.environ]
    if missing:
        raise SettingsError(f"nurture needs these environment variables, which are not set: {', '.join(missing)}")
    raw: dict[str, object] = {}
    for field, env in ENVIRONMENT.items():
        value = os.environ.get(env)
        if value is not None:
            raw[field] = [v.strip() for v in value.split(",") if v.strip()] if field == "allowed_origins" else value
    try:
        return Settings.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(f"{ENVIRONMENT[str(e['loc'][0])]}: {e['msg']}" for e in error.errors())
        raise SettingsError(f"invalid nurture settings in the environment: {problems}") from error
