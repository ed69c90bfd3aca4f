"""Acknowledging a cdk-nag AwsSolutions finding, with its reason, on the narrowest construct."""

from __future__ import annotations

import aws_cdk as cdk
from constructs import IConstruct

# cdk-nag 3 reports through CDK's validation framework under this plugin namespace.
NAG_NAMESPACE = "AwsSolutions"


def acknowledge(scope: IConstruct, rule: str, reason: str, *, finding: str | None = None) -> None:
    """Acknowledge `AwsSolutions-<rule>` (or one finding of it, e.g. `Resource::*`) on `scope`."""
    rule_id = f"{NAG_NAMESPACE}-{rule}" + (f"[{finding}]" if finding else "")
    cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=f"{NAG_NAMESPACE}::{rule_id}", reason=reason))


def arn_placeholder(resource: IConstruct, attribute: str = "Arn") -> str:
    """How cdk-nag prints `Fn::GetAtt` of `resource` inside a finding id: `<LogicalId.Arn>`."""
    cfn = resource.node.default_child or resource
    stack = cdk.Stack.of(resource)
    return f"<{stack.resolve(stack.get_logical_id(cfn))}.{attribute}>"  # type: ignore[arg-type]
