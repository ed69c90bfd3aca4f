"""The lead service on the real DynamoDB adapter (moto, in process) decides what the in-memory engine decides.

A few of the random streams of tests/unit/test_differential.py, now through `LeadTable`: conditional writes,
profile links written in one transaction with the lead, the absorbed lead deleted, the due index and the
lead item's JSON round trip are the real adapter's. The bus and the send queue stay in memory: the
comparison reads the effects from them (the unit test explains why the comparison is fair).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from hypothesis import HealthCheck, example, given, settings
from moto import mock_aws

from nurture import constants as c
from nurture.adapters.dynamodb import LeadTable
from nurture.domain.messages import Message
from nurture.pipeline.leads import LeadService
from nurture.tools.local.resources import REGION, TABLES
from tests.differential import play, streams, two_devices
from tests.fakes import fake_ports
from tests.support import starter

_tables = itertools.count(1)


@pytest.fixture(scope="module")
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        # In process, even when the session's local stack has pointed AWS_ENDPOINT_URL at its moto server.
        yield boto3.client("dynamodb", region_name=REGION, config=Config(ignore_configured_endpoint_urls=True))


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(streams(max_messages=15))
@example(two_devices())  # always at least one merge of two leads with emails due
def test_the_lead_service_on_dynamodb_decides_what_the_engine_decides(dynamodb: Any, stream: list[Message]) -> None:
    table = f"{c.LEADS_TABLE}-differential-{next(_tables)}"  # a fresh table for each example
    dynamodb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST", **TABLES[c.LEADS_TABLE])
    ports = dataclasses.replace(fake_ports(), leads=LeadTable(dynamodb, table))
    engine_people, service_people = play(stream, LeadService(ports, starter()), starter())
    assert service_people == engine_people
