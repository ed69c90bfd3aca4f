"""Existing Segment sources work unchanged: Segment's own Python client (`segment-analytics-python`), its `host` set to
`nurture local`, sends identify, page and track over real HTTP, and the lead appears as an admin sees it."""

from __future__ import annotations

from typing import Any

import pytest
from segment.analytics.client import Client
from segment.analytics.request import APIError

from tests.e2e.conftest import Local

pytestmark = pytest.mark.e2e
EMAIL = "dee@northwind.example"


def test_segment_python_client_sends_a_lead_the_engine_scores(local: Local) -> None:
    # Given Segment's own client, pointed at the local stack with its write key (HTTP basic, as Segment sends it)
    errors: list[Any] = []
    client = Client(
        write_key=local.write_key,
        host=local.url,
        sync_mode=True,  # one request per call, so the test knows when the stack has the message
        max_retries=0,
        on_error=lambda error, batch: errors.append(error),
    )
    # When a backend identifies Dee and records her pricing visit and her demo request
    client.identify("u-dee", {"email": EMAIL, "company": "Northwind", "company_size": 240, "seniority": "vp"})
    client.page("u-dee", name="Pricing", properties={"path": "/pricing", "url": "https://www.example.com/pricing"})
    client.track("u-dee", "Demo Requested", {"form": "contact-sales"})
    client.flush()
    assert errors == []
    local.drain()
    # Then the lead appears with her traits and both signals, and the demo request took her to decision
    lead = local.lead(EMAIL)
    assert lead["traits"]["company"] == "Northwind"
    assert lead["traits"]["company_size"] == 240
    assert {c["rule"] for c in lead["intent_explained"]} == {"pricing_page_visit", "demo_request"}
    assert lead["stage"] == "decision"


def test_segment_python_client_hears_a_bad_write_key_as_an_error(local: Local) -> None:
    # Given the client with a write key the stack does not know
    client = Client(write_key="not-a-key", host=local.url, sync_mode=True, max_retries=0)
    # When it sends, then the client raises the API's 401 with its reason, and no lead is made
    with pytest.raises(APIError, match=r"unknown write key.*\(401\)"):
        client.identify("u-eve", {"email": "eve@northwind.example"})
    local.drain()
    status, _ = local.call(
        "GET", "/v1/leads?email=eve@northwind.example", headers={"authorization": f"Bearer {local.admin_token}"}
    )
    assert status == 404
