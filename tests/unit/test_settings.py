"""Deployed settings have no defaults: a function missing one fails at cold start, naming the variable."""

from __future__ import annotations

from types import ModuleType

import pytest

from nurture import constants as c
from nurture.runtime.settings import REQUIRED, SettingsError, settings
from tests.support import import_handler

FUNCTIONS = tuple(c.FUNCTION_DIRS)


def _cold_start(function: str) -> ModuleType:
    """Import functions/<dir>/handler.py afresh, as Lambda's init phase does."""
    return import_handler(function, f"cold_{function}")


def test_the_deployed_variables_are_all_required() -> None:
    assert set(REQUIRED) == {
        c.ENV_EVENTS_TABLE,
        c.ENV_LEADS_TABLE,
        c.ENV_IDEMPOTENCY_TABLE,
        c.ENV_CONTENT_BUCKET,
        c.ENV_EVENT_BUS,
        c.ENV_SEND_QUEUE_URL,
        c.ENV_SES_CONFIGURATION_SET,
        c.ENV_FROM_ADDRESS,
        c.ENV_WRITE_KEYS_SECRET,
        c.ENV_ALLOWED_ORIGINS,
        c.ENV_SIGNING_KEY_SECRET,
        c.ENV_PUBLIC_URL,
    }


def test_with_every_variable_set_the_settings_read_them() -> None:
    s = settings()
    assert s.leads_table == c.LEADS_TABLE
    assert s.allowed_origins == []
    assert s.due_shards == c.DUE_SHARDS
    assert s.admin_token is None


@pytest.mark.parametrize("function", FUNCTIONS)
@pytest.mark.parametrize("variable", REQUIRED)
def test_a_missing_variable_fails_the_cold_start_naming_it(
    monkeypatch: pytest.MonkeyPatch, function: str, variable: str
) -> None:
    monkeypatch.delenv(variable)
    with pytest.raises(SettingsError, match=f"not set: {variable}$"):
        _cold_start(function)


def test_an_empty_name_is_as_good_as_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(c.ENV_LEADS_TABLE, "")
    with pytest.raises(SettingsError, match=c.ENV_LEADS_TABLE):
        settings()


def test_an_invalid_value_is_reported_by_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(c.ENV_DUE_SHARDS, "sixteen")
    with pytest.raises(SettingsError, match=f"{c.ENV_DUE_SHARDS}: Input should be a valid integer"):
        settings()


@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_function_starts_with_every_variable_set(function: str) -> None:
    assert callable(_cold_start(function).handler)
