"""The DynamoDB side of the contract tests: moto in-process, the tables as the CDK stack defines them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from moto import mock_aws

from nurture import constants as c
from nurture.tools.local.resources import REGION, TABLES


@pytest.fixture
def dummy_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials that cannot reach AWS, and no profile or endpoint from the environment."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


@contextmanager
def moto_dynamodb(tables: tuple[str, ...] = (c.EVENTS_TABLE, c.LEADS_TABLE)) -> Iterator[Any]:
    """A DynamoDB client on moto with `tables` created as deployed; everything is gone when the block ends."""
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        for name in tables:
            client.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", **TABLES[name])
        yield client
