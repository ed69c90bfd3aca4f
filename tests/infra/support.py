"""Reading the synthesized template: logical ids of constructs, and IAM statements in plain words."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aws_cdk as cdk
from constructs import IConstruct


def logical_id(construct: IConstruct) -> str:
    """Logical id of a construct's CloudFormation resource (the L2's default child, or the L1 itself)."""
    cfn = construct.node.default_child or construct
    stack = cdk.Stack.of(construct)
    return str(stack.resolve(stack.get_logical_id(cfn)))  # type: ignore[arg-type]


def render(value: Any) -> str:
    """An intrinsic as cdk-nag prints it: `<Logical.Arn>`, `<Logical>`, joins concatenated."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if "Fn::GetAtt" in value:
            resource, attribute = value["Fn::GetAtt"]
            return f"<{resource}.{attribute}>"
        if "Ref" in value:
            return f"<{value['Ref']}>"
        if "Fn::Join" in value:
            separator, parts = value["Fn::Join"]
            return str(separator).join(render(part) for part in parts)
    return json.dumps(value, sort_keys=True)


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@dataclass(frozen=True)
class Statement:
    actions: frozenset[str]
    resources: frozenset[str]
    condition: dict[str, Any]


def statements_of_role(template: dict[str, Any], role_id: str) -> list[Statement]:
    """Every Allow statement of every policy attached to the role (inline and AWS::IAM::Policy)."""
    found: list[Statement] = []
    resources = template["Resources"]
    documents = [policy["PolicyDocument"] for policy in resources[role_id]["Properties"].get("Policies", [])] + [
        resource["Properties"]["PolicyDocument"]
        for resource in resources.values()
        if resource["Type"] == "AWS::IAM::Policy" and {"Ref": role_id} in resource["Properties"].get("Roles", [])
    ]
    for document in documents:
        for statement in document["Statement"]:
            if statement["Effect"] != "Allow":
                continue
            found.append(
                Statement(
                    actions=frozenset(as_list(statement["Action"])),
                    resources=frozenset(render(r) for r in as_list(statement["Resource"])),
                    condition=statement.get("Condition", {}),
                )
            )
    return found


def allowed(statements: list[Statement]) -> dict[str, set[str]]:
    """action -> the resources it is allowed on."""
    grants: dict[str, set[str]] = {}
    for statement in statements:
        for action in statement.actions:
            grants.setdefault(action, set()).update(statement.resources)
    return grants


def actions_on(statements: list[Statement], prefix: str) -> dict[str, set[str]]:
    """The grants whose action is in a service, e.g. `dynamodb:`."""
    return {action: res for action, res in allowed(statements).items() if action.startswith(prefix)}
