"""One local stack (moto's server, the real handlers) for the integration tests of a session."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from nurture.tools.local.runtime import LocalStack
from tests.support import ROOT

WRITE_KEY = "local-write-key"
ADMIN_TOKEN = "it-admin-token"


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    local = LocalStack(ROOT / "content", WRITE_KEY, ADMIN_TOKEN, manual_start=datetime(2026, 1, 5, 10, 0, tzinfo=UTC))
    local.start()
    yield local
    local.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests share one stack and its clock: run them in file order, even when named one by one (mutmut does)."""
    items.sort(key=lambda item: (item.location[0], item.location[1] or 0))
