"""Synthesizes the app once per test session; every infra test reads that one cloud assembly."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template

from infra.app import STACK_NAME, create_app
from infra.stack import NurtureStack

FROM_ADDRESS = "news@nurture.example"
ALLOWED_ORIGINS = ("https://www.example.com", "https://app.example.com")


@dataclass(frozen=True)
class Synthesized:
    stack: NurtureStack
    template: Template
    resources: dict[str, Any]
    json: dict[str, Any]
    outdir: Path


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    outdir = tmp_path_factory.mktemp("cdk.out")
    app = create_app(
        outdir=str(outdir),
        context={
            "from_address": FROM_ADDRESS,
            "allowed_origins": ",".join(ALLOWED_ORIGINS),
            # Keep the cdk-nag report in validation-report.json instead of raising: only the nag test
            # should fail on a finding, not every test that reads the template.
            "@aws-cdk/core:failSynthOnValidationErrors": False,
        },
    )
    app.synth()
    stack = app.node.find_child(STACK_NAME)
    assert isinstance(stack, NurtureStack)
    template = Template.from_stack(stack)
    template_json = template.to_json()
    return Synthesized(
        stack=stack,
        template=template,
        resources=template_json["Resources"],
        json=dict(template_json),
        outdir=outdir,
    )


@pytest.fixture(scope="session")
def stack(synth: Synthesized) -> NurtureStack:
    return synth.stack


@pytest.fixture(scope="session")
def template(synth: Synthesized) -> Template:
    return synth.template


@pytest.fixture(scope="session")
def template_json(synth: Synthesized) -> dict[str, Any]:
    return synth.json


@pytest.fixture(scope="session")
def resources(synth: Synthesized) -> dict[str, Any]:
    return synth.resources
