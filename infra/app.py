"""Entry point of the CDK app (`python -m infra.app`, or `npx cdk synth` through cdk.json).

Context values: `from_address` (the sender address, default nurture@example.com) and `allowed_origins`
(CORS origins of the tracking API, a list or a comma-separated string, default `*`).
"""

from __future__ import annotations

import json
import os
from typing import Any

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra import paths
from infra.stack import NurtureStack

STACK_NAME = "NurtureStack"
DEFAULT_FROM_ADDRESS = "nurture@example.com"
# Segment-style write keys are public (they sit in every page's snippet), so CORS adds no secrecy;
# narrow it to the marketing sites with `-c allowed_origins=https://www.example.com,...`.
DEFAULT_ALLOWED_ORIGINS = ("*",)
# cdk.json's context (the feature flags) is read here too, so that tests and `python -m infra.app`
# synthesize exactly what the CLI does; the CLI's own context still wins.
CDK_JSON = paths.REPO_ROOT / "cdk.json"
# Set by the CDK CLI when it runs the app; it then decides where the cloud assembly goes.
CLI_OUTDIR_ENV = "CDK_OUTDIR"


def allowed_origins(value: object) -> list[str]:
    if value is None:
        return list(DEFAULT_ALLOWED_ORIGINS)
    items = value.split(",") if isinstance(value, str) else list(value)  # type: ignore[call-overload]
    origins = [str(item).strip() for item in items if str(item).strip()]
    if not origins:
        raise ValueError("context allowed_origins is empty: give at least one origin, or '*'")
    return origins


def cdk_json_context() -> dict[str, Any]:
    context: dict[str, Any] = json.loads(CDK_JSON.read_text(encoding="utf-8")).get("context", {})
    return context


def create_app(**app_props: Any) -> cdk.App:
    """The app with the nurture stack and cdk-nag's AwsSolutions checks, which fail synth on a finding."""
    context = {**cdk_json_context(), **app_props.pop("context", {})}
    app = cdk.App(context=context, **app_props)
    NurtureStack(
        app,
        STACK_NAME,
        description="Behavioural B2B lead-nurture engine (nurture)",
        from_address=str(app.node.try_get_context("from_address") or DEFAULT_FROM_ADDRESS),
        allowed_origins=allowed_origins(app.node.try_get_context("allowed_origins")),
    )
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app


def main() -> None:
    app = create_app() if os.environ.get(CLI_OUTDIR_ENV) else create_app(outdir="cdk.out")
    app.synth()


if __name__ == "__main__":
    main()
