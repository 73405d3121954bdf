"""The operations kit: security headers, the run id header, JSON logs, PostgreSQL's rotated log,
the systemd unit (`systemd-analyze verify`) and the alerting rules (`promtool check rules`)."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from runner.headers import content_security_policy, inline_script_hashes
from runner.logs import JsonFormatter
from runner.postgres import EmbeddedCluster
from runner.settings import REPO_ROOT

from .conftest import LiveRunner

UNIT = REPO_ROOT / "docker" / "systemd" / "asyncio-workshop.service"
ALERTS = REPO_ROOT / "docker" / "prometheus" / "alerts.yml"
SNIPPET = "chapter_05/06_sync_generator"


def tool(name: str) -> str:
    found = shutil.which(name)
    assert found, f"{name} is missing: .ci/system-packages installs it"
    return found


@pytest.mark.parametrize("path", ["/api/health", "/api/snippets", "/metrics", "/api/nothing"])
def test_every_response_carries_the_security_headers(live_runner: LiveRunner, path: str) -> None:
    response = httpx.get(f"{live_runner.url}{path}")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "'unsafe-inline'" not in policy.split("script-src", 1)[1].split(";", 1)[0]


def test_a_run_answer_names_its_run(live_runner: LiveRunner) -> None:
    response = live_runner.run(SNIPPET)
    assert response.headers["x-run-id"] == response.json()["id"]
    with live_runner.stream(SNIPPET) as streamed:
        run_id = streamed.headers["x-run-id"]
        events = [json.loads(line) for line in streamed.iter_lines()]
    assert events[0] == {"event": "started", "id": run_id, "snippet": SNIPPET}
    assert events[-1]["event"] == "finished" and events[-1]["id"] == run_id


def test_the_csp_allows_exactly_the_inline_scripts_the_pages_hold(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "index.html").write_text('<script>one()</script><script src="x.js"></script>')
    (tmp_path / "a" / "index.html").write_text(
        '<script>one()</script><script id="__config" type="application/json">{}</script><script>two()</script>'
    )

    def source(body: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"

    assert inline_script_hashes(tmp_path) == sorted([source("one()"), source("two()")])
    assert f"script-src 'self' {' '.join(sorted([source('one()'), source('two()')]))};" in content_security_policy(
        tmp_path
    )


def test_json_logs_are_one_object_per_line() -> None:
    record = logging.LogRecord("runner.app", logging.WARNING, __file__, 1, "run %s: %s", ("abc", 'say "hi"\n'), None)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["level"] == "WARNING" and parsed["logger"] == "runner.app"
    assert parsed["message"] == 'run abc: say "hi"\n'
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", parsed["time"])


@pytest.mark.anyio
async def test_the_embedded_postgres_log_is_rotated(live_runner: LiveRunner) -> None:
    server = live_runner.runtime.server
    assert isinstance(server, EmbeddedCluster)

    async def settings() -> dict[str, str]:
        factory = live_runner.runtime.factory
        assert factory is not None
        async with factory.admin_connection() as conn:
            rows = await conn.fetch(
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('logging_collector', 'log_filename', 'log_truncate_on_rotation', 'log_rotation_age')"
            )
            await conn.execute("DO $$ BEGIN RAISE WARNING 'rotation probe'; END $$")
        return {r["name"]: r["setting"] for r in rows}

    found = live_runner.call(settings())
    assert found == {
        "logging_collector": "on",
        "log_filename": "postgres-%H.log",
        "log_truncate_on_rotation": "on",
        "log_rotation_age": "60",
    }
    logs = list((server.data_dir / "log").glob("postgres-*.log"))
    assert logs and all(re.fullmatch(r"postgres-\d\d\.log", p.name) for p in logs)


def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    unit = UNIT.read_text()
    for line in ("Delegate=yes", "KillSignal=SIGTERM", "ProtectSystem=strict", "WORKSHOP_PUBLIC=1"):
        assert line in unit
    stop = int(re.search(r"^TimeoutStopSec=(\d+)$", unit, re.M)[1])  # type: ignore[index]
    drain = int(re.search(r"^Environment=WORKSHOP_DRAIN_SECONDS=(\d+)$", unit, re.M)[1])  # type: ignore[index]
    assert stop >= drain + 10
    # verify checks that ExecStart exists: point it at this checkout instead of /opt/asyncio-workshop
    local = tmp_path / UNIT.name
    local.write_text(unit.replace("/opt/asyncio-workshop", str(REPO_ROOT)))
    result = subprocess.run([tool("systemd-analyze"), "verify", str(local)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr


def test_the_alerting_rules_check_and_cover_what_matters() -> None:
    result = subprocess.run(
        [tool("promtool"), "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rules = [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]
    expressions = " ".join(rule["expr"] for rule in rules)
    for series in (
        "up{",
        "workshop_isolation_missing",
        "workshop_pool_ready",
        'phase="setup"',
        "workshop_runs_unavailable_total",
        "workshop_refusals_total",
        "workshop_clone_space_free_bytes",
        "workshop_postgres_connections",
    ):
        assert series in expressions, series


def test_the_alerts_use_only_series_the_runner_exports(live_runner: LiveRunner) -> None:
    deadline = time.monotonic() + 10  # PostgreSQL's connections are counted by the watchdog, once a second
    while "workshop_postgres_connections " not in (text := httpx.get(f"{live_runner.url}/metrics").text):
        assert time.monotonic() < deadline, "workshop_postgres_connections never appeared"
        time.sleep(0.2)
    exported = set(re.findall(r"^# TYPE (\w+) ", text, re.M)) | set(re.findall(r"^(\w+)[{ ]", text, re.M))
    used = set(re.findall(r"\b(workshop_\w+)", ALERTS.read_text()))
    # a counter `x` is exported as x_total, a histogram `x` as x_bucket/_sum/_count
    unknown = {
        n for n in used if n not in exported and n.removesuffix("_total").removesuffix("_bucket") not in exported
    }
    assert unknown == set(), unknown
