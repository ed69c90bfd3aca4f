"""Runtime settings of the Lambdas and the local stack, read once from the environment and validated."""

from __future__ import annotations

import os
from functools import cache

from pydantic import BaseModel, Field, ValidationError

from nurture import constants as c


class Settings(BaseModel):
    events_table: str = c.EVENTS_TABLE
    leads_table: str = c.LEADS_TABLE
    idempotency_table: str = c.IDEMPOTENCY_TABLE
    content_bucket: str = "nurture-content"
    event_bus: str = c.EVENT_BUS
    send_queue_url: str = ""
    ses_configuration_set: str = c.SES_CONFIGURATION_SET
    from_address: str = "nurture@example.com"
    write_keys_secret: str = Field(default="", description="Secrets Manager id of {'write_keys': [...]}")
    allowed_origins: list[str] = Field(default_factory=list)
    due_shards: int = Field(default=c.DUE_SHARDS, gt=0, le=256)
    admin_token: str | None = Field(default=None, description="Local stack only: the bearer token for admin routes")


_ENV = {
    "events_table": c.ENV_EVENTS_TABLE,
    "leads_table": c.ENV_LEADS_TABLE,
    "idempotency_table": c.ENV_IDEMPOTENCY_TABLE,
    "content_bucket": c.ENV_CONTENT_BUCKET,
    "event_bus": c.ENV_EVENT_BUS,
    "send_queue_url": c.ENV_SEND_QUEUE_URL,
    "ses_configuration_set": c.ENV_SES_CONFIGURATION_SET,
    "from_address": c.ENV_FROM_ADDRESS,
    "write_keys_secret": c.ENV_WRITE_KEYS_SECRET,
    "allowed_origins": c.ENV_ALLOWED_ORIGINS,
    "due_shards": c.ENV_DUE_SHARDS,
    "admin_token": c.ENV_LOCAL_ADMIN_TOKEN,
}


@cache
def settings() -> Settings:
    """The settings, from environment variables named in `nurture.constants`. Fails loudly at cold start."""
    raw: dict[str, object] = {}
    for field, env in _ENV.items():
        value = os.environ.get(env)
        if value is None:
            continue
        raw[field] = [v.strip() for v in value.split(",") if v.strip()] if field == "allowed_origins" else value
    try:
        return Settings.model_validate(raw)
    except ValidationError as error:
        raise RuntimeError(f"invalid nurture settings in the environment: {error}") from error
