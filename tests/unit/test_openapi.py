"""The OpenAPI document: generated from the code, committed in docs/, and true to what the API answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nurture.api.openapi import openapi_document
from nurture.tools.cli import main as nurture
from tests.support import ROOT

COMMITTED = ROOT / "docs" / "openapi.json"
INGEST = {
    "/v1/track": "TrackMessage",
    "/v1/page": "PageMessage",
    "/v1/identify": "IdentifyMessage",
    "/v1/batch": "Batch",
}
ADMIN = ("/v1/leads", "/v1/leads/{lead_id}")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi_document()


def test_the_committed_document_is_the_generated_one(tmp_path: Path) -> None:
    # Given the document exactly as the CLI writes it
    generated = tmp_path / "openapi.json"
    assert nurture(["openapi", "--output", str(generated)]) == 0
    # Then docs/openapi.json is byte for byte the same
    assert COMMITTED.read_text(encoding="utf-8") == generated.read_text(encoding="utf-8"), (
        "docs/openapi.json is out of date: run `nurture openapi --output docs/openapi.json` and commit it"
    )


def test_the_document_has_the_six_v1_routes(document) -> None:
    routes = {(path, method) for path, operations in document["paths"].items() for method in operations}
    assert routes == {(path, "post") for path in INGEST} | {(path, "get") for path in ADMIN}


@pytest.mark.parametrize(("path", "model"), INGEST.items())
def test_each_ingest_body_is_the_segment_model_that_parses_it(document, path: str, model: str) -> None:
    body = document["paths"][path]["post"]["requestBody"]
    reference = {"schema": {"$ref": f"#/components/schemas/{model}"}}
    assert body["content"] == {"application/json": reference, "text/plain": reference}
    assert model in document["components"]["schemas"]


@pytest.mark.parametrize("path", INGEST)
def test_ingest_routes_document_no_parameters(document, path: str) -> None:
    assert "parameters" not in document["paths"][path]["post"]


@pytest.mark.parametrize("path", ADMIN)
def test_admin_routes_document_the_lead_401_and_404(document, path: str) -> None:
    responses = document["paths"][path]["get"]["responses"]
    assert responses["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/LeadView"}
    assert {"401", "404"} <= set(responses)


def test_every_documented_status_is_one_the_api_answers_with(document) -> None:
    documented = {
        status for operations in document["paths"].values() for op in operations.values() for status in op["responses"]
    }
    assert documented == {"200", "400", "401", "404", "413"}


def test_the_document_is_valid_openapi(document) -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(json.loads(json.dumps(document)))
