"""The unit tests run without AWS, but code under test reads the settings: give it a deployment's variables."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from nurture import constants as c
from nurture.runtime.settings import settings

DEPLOYED = {
    c.ENV_EVENTS_TABLE: c.EVENTS_TABLE,
    c.ENV_LEADS_TABLE: c.LEADS_TABLE,
    c.ENV_IDEMPOTENCY_TABLE: c.IDEMPOTENCY_TABLE,
    c.ENV_CONTENT_BUCKET: "nurture-content-test",
    c.ENV_EVENT_BUS: c.EVENT_BUS,
    c.ENV_SEND_QUEUE_URL: f"https://sqs.eu-west-1.amazonaws.com/123456789012/{c.SEND_QUEUE}",
    c.ENV_SES_CONFIGURATION_SET: c.SES_CONFIGURATION_SET,
    c.ENV_FROM_ADDRESS: "nurture@example.com",
    c.ENV_WRITE_KEYS_SECRET: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:nurture/write-keys",
    c.ENV_ALLOWED_ORIGINS: "",
    c.ENV_SIGNING_KEY_SECRET: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:nurture/signing-key",
    c.ENV_PUBLIC_URL: "https://api.nurture.example",
}
"""What the CDK stack gives every function (infra/stack.py), with made-up names."""


@pytest.fixture(autouse=True)
def deployed_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    for name, value in DEPLOYED.items():
        monkeypatch.setenv(name, value)
    # A deployment has no local-only variables, even while the integration tests' local stack runs.
    for local_only in (c.ENV_LOCAL_ADMIN_TOKEN, c.ENV_LOCAL_WRITE_KEY):
        monkeypatch.delenv(local_only, raising=False)
    settings.cache_clear()
    yield DEPLOYED
    settings.cache_clear()
