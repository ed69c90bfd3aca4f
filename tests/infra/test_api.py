"""The public HTTP API: Segment-compatible tracking routes, IAM-only admin routes, logged and throttled."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Template

from infra.stack import NurtureStack
from tests.infra.conftest import ALLOWED_ORIGINS
from tests.infra.support import logical_id
from tests.support import ROOT

TRACKING_ROUTES = ("POST /v1/track", "POST /v1/page", "POST /v1/identify", "POST /v1/batch")
ADMIN_ROUTES = (
    "GET /v1/leads",
    "GET /v1/leads/{lead_id}",
    "DELETE /v1/leads/{lead_id}",
    "POST /v1/leads/{lead_id}/sales-status",
)
UNSUBSCRIBE_ROUTES = ("GET /v1/unsubscribe", "POST /v1/unsubscribe")


@pytest.fixture(scope="module")
def routes(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        r["Properties"]["RouteKey"]: r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::ApiGatewayV2::Route"
    }


@pytest.mark.parametrize("route_key", TRACKING_ROUTES)
def test_tracking_routes_are_open_to_browsers_and_checked_by_write_key(
    routes: dict[str, dict[str, Any]], route_key: str
) -> None:
    assert routes[route_key]["AuthorizationType"] == "NONE"


@pytest.mark.parametrize("route_key", ADMIN_ROUTES)
def test_admin_routes_need_signed_iam_requests(routes: dict[str, dict[str, Any]], route_key: str) -> None:
    assert routes[route_key]["AuthorizationType"] == "AWS_IAM"


@pytest.mark.parametrize("route_key", UNSUBSCRIBE_ROUTES)
def test_unsubscribe_routes_are_open_to_mail_clients_and_checked_by_the_signed_token(
    routes: dict[str, dict[str, Any]], route_key: str
) -> None:
    assert routes[route_key]["AuthorizationType"] == "NONE"


def test_api_serves_exactly_the_v1_routes(routes: dict[str, dict[str, Any]]) -> None:
    assert set(routes) == set(TRACKING_ROUTES) | set(ADMIN_ROUTES) | set(UNSUBSCRIBE_ROUTES)


def test_every_route_reaches_the_ingest_lambda(
    resources: dict[str, Any], routes: dict[str, dict[str, Any]], stack: NurtureStack
) -> None:
    integration_ids = {route["Target"]["Fn::Join"][1][1]["Ref"] for route in routes.values()}

    assert len(integration_ids) == 1
    [integration_id] = integration_ids
    # The published version's alias (SnapStart: tests/infra/test_cold_start.py), of the ingest function
    assert resources[integration_id]["Properties"]["IntegrationUri"] == {"Ref": logical_id(stack.ingest.alias)}
    alias = resources[logical_id(stack.ingest.alias)]["Properties"]
    assert alias["FunctionName"] == {"Ref": logical_id(stack.ingest.function)}


def test_api_allows_the_configured_origins(template: Template) -> None:
    template.has_resource_properties(
        "AWS::ApiGatewayV2::Api",
        {"CorsConfiguration": {"AllowOrigins": list(ALLOWED_ORIGINS), "AllowMethods": ["POST", "OPTIONS"]}},
    )


def test_api_stage_logs_every_request_and_throttles(resources: dict[str, Any], stack: NurtureStack) -> None:
    stage = resources[logical_id(stack.ingest.stage)]["Properties"]

    assert stage["StageName"] == "$default"
    assert stage["AutoDeploy"] is True
    assert stage["AccessLogSettings"]["DestinationArn"] == {"Fn::GetAtt": [logical_id(stack.ingest.access_logs), "Arn"]}
    assert json.loads(stage["AccessLogSettings"]["Format"])["requestId"] == "$context.requestId"
    assert stage["DefaultRouteSettings"]["ThrottlingRateLimit"] > 0
    assert stage["DefaultRouteSettings"]["ThrottlingBurstLimit"] >= stage["DefaultRouteSettings"]["ThrottlingRateLimit"]


def test_every_operation_of_the_openapi_document_has_a_route(routes: dict[str, dict[str, Any]]) -> None:
    # What the app serves (its generated OpenAPI document) is what API Gateway routes: none left unreachable.
    document = json.loads((ROOT / "docs" / "openapi.json").read_text())
    operations = {f"{method.upper()} {path}" for path, methods in document["paths"].items() for method in methods}
    assert operations == set(routes)
