"""`/metrics` in the Prometheus text format counts what the runner did."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .conftest import LiveRunner
from .hostile.support import BackgroundRun

GAUGES = ("workshop_pool_ready", "workshop_pool_busy", "workshop_queue_waiting", "workshop_runs_running")
SNIPPET = "chapter_05/03_pool"
HOLD = "import time\nprint('started', flush=True)\ntime.sleep(60)\n"
"""A run that prints, then sleeps until its stream is closed (or, at worst, its time limit)."""


def scrape(live_runner: LiveRunner) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    response = httpx.get(f"{live_runner.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return live_runner.metrics()


def test_runs_and_durations_are_counted(live_runner: LiveRunner) -> None:
    before = live_runner.runs_finished("ok")
    assert live_runner.run("chapter_05/06_sync_generator").json()["status"] == "ok"
    after = scrape(live_runner)
    assert after["workshop_runs_total"][(("status", "ok"),)] == before + 1
    for phase in ("queue", "setup", "run", "total"):
        assert after["workshop_run_duration_seconds_count"][(("phase", phase),)] >= 1


def gauges(live_runner: LiveRunner) -> dict[str, float]:
    samples = scrape(live_runner)
    return {name: samples[name][()] for name in GAUGES}


def wait_for_gauges(live_runner: LiveRunner, expected: dict[str, float], timeout: float = 15) -> dict[str, float]:
    """Scrape until the gauges show `expected`; fail at the deadline with what they showed."""
    deadline = time.monotonic() + timeout
    while True:
        seen = gauges(live_runner)
        if all(seen[name] == value for name, value in expected.items()):
            return seen
        if time.monotonic() > deadline:
            pytest.fail(f"the gauges did not reach {expected} within {timeout} s: {seen}")
        time.sleep(0.05)


def quiet_health(live_runner: LiveRunner, timeout: float = 30) -> dict[str, Any]:
    """The health once nothing runs or waits and the pool is full again (used sandboxes replaced)."""
    deadline = time.monotonic() + timeout
    while True:
        health: dict[str, Any] = httpx.get(f"{live_runner.url}/api/health", timeout=10).json()
        pool, runs = health["pool"], health["runs"]
        if pool["ready"] == pool["size"] and pool["busy"] == 0 and runs["running"] == 0 and runs["waiting"] == 0:
            return health
        if time.monotonic() > deadline:
            pytest.fail(f"the runner did not quieten within {timeout} s: pool {pool}, runs {runs}")
        time.sleep(0.05)


def assert_pool_gauges_agree_with_health(live_runner: LiveRunner, timeout: float = 5) -> None:
    """The pool gauges say what the health says, read while the pool holds still (same before and after)."""
    deadline = time.monotonic() + timeout
    while True:
        before = httpx.get(f"{live_runner.url}/api/health", timeout=10).json()["pool"]
        seen = gauges(live_runner)
        after = httpx.get(f"{live_runner.url}/api/health", timeout=10).json()["pool"]
        if before == after:
            assert (seen["workshop_pool_ready"], seen["workshop_pool_busy"]) == (after["ready"], after["busy"]), seen
            return
        if time.monotonic() > deadline:
            pytest.fail(f"the pool did not hold still for a scrape within {timeout} s: {before} then {after}")


@contextlib.contextmanager
def held_run(live_runner: LiveRunner) -> Iterator[None]:
    """A run that has started and sleeps; leaving the block closes its stream, which ends the run."""
    with live_runner.stream(SNIPPET, HOLD) as response:
        assert response.status_code == 200, response.read()
        lines = response.iter_lines()  # kept: a line iterator dropped half-way closes the stream
        for line in lines:
            event = json.loads(line) if line else {}
            if event.get("event") == "output" and "started" in event["text"]:
                break
        else:
            pytest.fail("the held run ended before it printed")
        yield


def test_gauges_follow_runs_as_they_start_wait_and_end(live_runner: LiveRunner) -> None:
    assert scrape(live_runner)["workshop_postgres_up"][()] == 1
    quiet_health(live_runner)
    idle = gauges(live_runner)
    assert (idle["workshop_runs_running"], idle["workshop_queue_waiting"]) == (0, 0), idle
    assert_pool_gauges_agree_with_health(live_runner)
    slots = live_runner.settings.max_concurrent_runs
    assert slots == 2, "this test fills the live runner's two slots"
    with held_run(live_runner):
        running = gauges(live_runner)
        assert (running["workshop_runs_running"], running["workshop_queue_waiting"]) == (1, 0), running
        assert running["workshop_pool_busy"] >= 1, running
        with held_run(live_runner):
            assert gauges(live_runner)["workshop_runs_running"] == 2
            third = BackgroundRun(live_runner, "print('third')", snippet=SNIPPET)  # no slot: it waits
            # well within the held runs' time limit, so a failure shows them still running
            wait_for_gauges(live_runner, {"workshop_queue_waiting": 1, "workshop_runs_running": 2}, timeout=5)
            assert_pool_gauges_agree_with_health(live_runner)  # both sandboxes taken: fewer ready than the size
        assert third.finish()["status"] == "ok"  # the second run's slot went to it
        assert third.text == "third\n"
    wait_for_gauges(live_runner, {"workshop_runs_running": 0, "workshop_queue_waiting": 0, "workshop_pool_busy": 0})
    quiet_health(live_runner)
    assert_pool_gauges_agree_with_health(live_runner)
