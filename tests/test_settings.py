"""Settings come from the environment, are all documented, and bad values stop the start clearly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from runner import capacity
from runner import settings as settings_module
from runner.settings import REPO_ROOT, Settings, documented_settings


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


@pytest.mark.parametrize(("value", "expected"), [("info", "INFO"), ("Debug", "DEBUG"), ("WARNING", "WARNING")])
def test_the_log_level_is_accepted_in_any_case(value: str, expected: str) -> None:
    assert Settings.from_env({"WORKSHOP_LOG_LEVEL": value}).log_level == expected


@pytest.mark.parametrize(
    ("variable", "value", "accepts"),
    [
        ("WORKSHOP_LOG_LEVEL", "loud", "DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("WORKSHOP_SANDBOX", "docker", "auto, bubblewrap, plain"),
        ("WORKSHOP_CGROUPS", "maybe", "auto, required, off"),
        ("WORKSHOP_LOG_FORMAT", "xml", "text, json"),
        ("WORKSHOP_MAX_CONCURRENT_RUNS", "-1", "at least 0"),
        ("WORKSHOP_MAX_QUEUE", "-5", "at least 0"),
        ("WORKSHOP_RUN_TIMEOUT", "0", "more than 0"),
        ("WORKSHOP_RUN_MEMORY", "-1", "more than 0"),
        ("WORKSHOP_CLIENT_RUNS", "0", "at least 1"),
        ("WORKSHOP_DRAIN_SECONDS", "-3", "at least 0"),
        ("WORKSHOP_RUN_CPUS", "nan", "a finite number"),
        ("WORKSHOP_POOL_SIZE", "two", "a whole number"),
    ],
)
def test_a_refused_value_names_the_variable_and_what_it_accepts(variable: str, value: str, accepts: str) -> None:
    with pytest.raises(SystemExit) as refused:
        Settings.from_env({variable: value})
    message = str(refused.value.code)
    assert message.startswith(f"{variable}=") and "is not accepted" in message, message
    assert value in message and accepts in message, message


def test_enumerations_are_normalised() -> None:
    words = {"WORKSHOP_SANDBOX": "Plain", "WORKSHOP_CGROUPS": "OFF", "WORKSHOP_LOG_FORMAT": "JSON"}
    settings = Settings.from_env(words)
    assert (settings.sandbox, settings.cgroups, settings.log_format) == ("plain", "off", "json")


def test_zero_concurrent_runs_means_derived_and_the_clone_dir_expands_the_home() -> None:
    settings = Settings.from_env({"WORKSHOP_MAX_CONCURRENT_RUNS": "0", "WORKSHOP_CLONE_DIR": "~/clones"})
    assert settings.max_concurrent_runs >= 2
    assert settings.clone_dir == str(Path.home() / "clones")
    assert Settings.from_env({"WORKSHOP_CLONE_DIR": "off"}).clone_dir == "off"


def test_the_pool_refill_follows_the_cpus_available(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings_module, "cpus_available", lambda: 8.0)
    assert Settings.from_env({}).pool_refill == 8
    monkeypatch.setattr(settings_module, "cpus_available", lambda: 1.5)
    assert Settings.from_env({}).pool_refill == 2
    monkeypatch.setattr(settings_module, "cpus_available", lambda: 0.4)
    assert Settings.from_env({}).pool_refill == 1
    assert Settings.from_env({"WORKSHOP_POOL_REFILL": "3"}).pool_refill == 3


def test_a_bad_setting_stops_the_runner_with_one_line_and_no_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "runner", "serve"],
        cwd=REPO_ROOT,
        env={**os.environ, "WORKSHOP_MAX_CONCURRENT_RUNS": "-2"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "WORKSHOP_MAX_CONCURRENT_RUNS=-2 is not accepted: it must be at least 0 (0: derived from this host)"
    )


def test_the_cpu_quota_of_a_cgroup_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = Path
    (tmp_path / "cpu.max").write_text("150000 100000\n")

    def fake_path(*parts: str) -> Path:
        text = str(real(*parts))
        return real(tmp_path / "cpu.max") if text == "/sys/fs/cgroup/cpu.max" else real(text)

    monkeypatch.setattr(capacity, "Path", fake_path)
    assert capacity.cpus_available() == min(1.5, len(os.sched_getaffinity(0)))


@pytest.mark.parametrize("mode", ["require", "verify-full"])
def test_a_database_url_asking_for_tls_is_refused_clearly(mode: str) -> None:
    url = f"postgresql://postgres:pw@db.example:5432/postgres?sslmode={mode}"
    with pytest.raises(SystemExit, match=f"WORKSHOP_DATABASE_URL asks for sslmode={mode}"):
        Settings.from_env({"WORKSHOP_DATABASE_URL": url})
    plain = "postgresql://postgres:pw@/postgres?host=/var/run/postgresql&sslmode=disable"
    assert Settings.from_env({"WORKSHOP_DATABASE_URL": plain}).database_url == plain
