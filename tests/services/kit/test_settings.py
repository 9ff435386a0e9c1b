"""Settings come from a mapping of environment variables; a bad value names its variable."""

from __future__ import annotations

import pytest

from services.erp.app import ErpSettings
from services.kit.settings import Settings, SettingsError


def test_values_are_converted_from_strings() -> None:
    s = ErpSettings.from_env({"ERP_LATENCY_MS": "150", "ERP_FAILURE_RATE": "0.25", "SEED": "false"})
    assert (s.erp_latency_ms, s.erp_failure_rate, s.seed) == (150.0, 0.25, False)


@pytest.mark.parametrize(
    ("env", "var"),
    [
        ({"ERP_FAILURE_RATE": "2"}, "ERP_FAILURE_RATE"),
        ({"ERP_LATENCY_MS": "fast"}, "ERP_LATENCY_MS"),
        ({"REDIS_MODE": "maybe"}, "REDIS_MODE"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], var: str) -> None:
    with pytest.raises(SettingsError, match=f"bad value for {var}"):
        ErpSettings.from_env(env)


def test_database_defaults_to_a_sqlite_file_per_service() -> None:
    s = Settings.from_env({"DATA_DIR": "/tmp/x"})
    assert s.database_url_for("erp") == "sqlite+aiosqlite:////tmp/x/erp.db"
    pg = Settings.from_env({"DATABASE_URL": "postgresql://u@h/db"})
    assert pg.database_url_for("erp") == "postgresql://u@h/db"
