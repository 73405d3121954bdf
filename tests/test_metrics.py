"""`/metrics` in the Prometheus text format counts what the runner did."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from .conftest import LiveRunner


def scrape(live_runner: LiveRunner) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    response = httpx.get(f"{live_runner.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def test_runs_and_durations_are_counted(live_runner: LiveRunner) -> None:
    before = scrape(live_runner).get("workshop_runs_total", {}).get((("status", "ok"),), 0.0)
    assert live_runner.run("chapter_05/06_sync_generator").json()["status"] == "ok"
    after = scrape(live_runner)
    assert after["workshop_runs_total"][(("status", "ok"),)] == before + 1
    for phase in ("queue", "setup", "run", "total"):
        assert after["workshop_run_duration_seconds_count"][(("phase", phase),)] >= 1


def test_gauges_describe_the_pool_queue_and_postgres(live_runner: LiveRunner) -> None:
    samples = scrape(live_runner)
    for name in ("workshop_pool_ready", "workshop_pool_busy", "workshop_queue_waiting", "workshop_runs_running"):
        assert samples[name][()] >= 0
    assert samples["workshop_postgres_up"][()] == 1
