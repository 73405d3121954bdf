"""Settings come from the environment, are all documented, and bad values stop the start clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.settings import Settings, documented_settings


def test_values_are_parsed_by_type() -> None:
    settings = Settings.from_env(
        {
            "WORKSHOP_RUN_TIMEOUT": "5.5",
            "WORKSHOP_ALLOW_EDITS": "off",
            "WORKSHOP_POOL_SIZE": "3",
            "WORKSHOP_CORS_ORIGINS": "https://a.example, https://b.example",
            "WORKSHOP_CACHE_DIR": "/tmp/x",
        }
    )
    assert settings.run_timeout == 5.5
    assert settings.allow_edits is False
    assert settings.pool_size == 3
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert settings.cache_dir == Path("/tmp/x")


def test_overrides_win_over_the_environment() -> None:
    assert Settings.from_env({"WORKSHOP_POOL_SIZE": "3"}, pool_size=1).pool_size == 1


@pytest.mark.parametrize(("variable", "value"), [("WORKSHOP_RUN_TIMEOUT", "soon"), ("WORKSHOP_ALLOW_EDITS", "maybe")])
def test_a_bad_value_names_the_setting(variable: str, value: str) -> None:
    with pytest.raises(SystemExit, match=value):
        Settings.from_env({variable: value})


def test_every_setting_has_a_variable_and_a_description() -> None:
    rows = documented_settings()
    assert len({env for _, env, _, _ in rows}) == len(rows)
    for name, env, _, doc in rows:
        assert env == "WORKSHOP_" + name.upper()
        assert doc.endswith(".") or doc.endswith(")")
