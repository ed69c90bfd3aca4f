"""`nurture local` creates its tables from `nurture.tools.local.resources.TABLES`: they must be the deployed ones."""

from __future__ import annotations

from typing import Any

import pytest

from nurture.tools.local.resources import TABLES
from tests.infra.conftest import Synthesized


def _deployed(synth: Synthesized, name: str) -> dict[str, Any]:
    tables = [
        r["Properties"]
        for r in synth.resources.values()
        if r["Type"] == "AWS::DynamoDB::Table" and r["Properties"].get("TableName") == name
    ]
    assert len(tables) == 1, f"no single table named {name} in the template"
    return tables[0]


def _indexes(spec: dict[str, Any]) -> dict[str, tuple[Any, str]]:
    return {
        i["IndexName"]: (i["KeySchema"], i["Projection"]["ProjectionType"])
        for i in spec.get("GlobalSecondaryIndexes", [])
    }


@pytest.mark.parametrize("name", sorted(TABLES))
def test_the_local_table_has_the_deployed_keys_and_indexes(synth: Synthesized, name: str) -> None:
    local, deployed = TABLES[name], _deployed(synth, name)
    assert local["KeySchema"] == deployed["KeySchema"]
    assert sorted(map(str, local["AttributeDefinitions"])) == sorted(map(str, deployed["AttributeDefinitions"]))
    assert _indexes(local) == _indexes(deployed)
    local_stream = local.get("StreamSpecification", {}).get("StreamViewType")
    assert local_stream == deployed.get("StreamSpecification", {}).get("StreamViewType")
