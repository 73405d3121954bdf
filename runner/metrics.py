"""Prometheus metrics at `/metrics`: runs by status, phase durations, pool and queue gauges.

Each app has its own registry (tests build several apps in one process); gauges are
read from the runtime when scraped rather than kept in step by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from .models import CheckVerdict

if TYPE_CHECKING:
    from .runs import Run
    from .runtime import Runtime

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PHASES = ("queue", "setup", "run", "total")
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


REFUSAL_REASONS = ("rate_limited", "client_queue_full", "run_time_budget", "busy")
UNAVAILABLE_REASONS = ("database_unavailable", "sandbox_unavailable", "clone_space_full", "draining", "unavailable")
"""The `error` codes of a 503 to `POST /api/runs`: runs that could not be prepared or admitted."""


class RuntimeGauges(Collector):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        pool, service = self.runtime.pool, self.runtime.service
        missing = len(self.runtime.missing_layers()) if service is not None else 0
        values = {
            "workshop_pool_ready": ("Prepared sandboxes waiting to be taken.", pool.ready if pool else 0),
            "workshop_pool_busy": ("Sandboxes in use.", pool.busy if pool else 0),
            "workshop_queue_waiting": ("Runs waiting for a free slot.", service.waiting if service else 0),
            "workshop_runs_running": ("Runs executing now.", service.running if service else 0),
            "workshop_postgres_up": ("1 while PostgreSQL is reachable.", int(self.runtime.postgres_healthy)),
            "workshop_draining": ("1 after SIGTERM, while runs finish.", int(self.runtime.draining)),
            "workshop_isolation_missing": ("Isolation layers this host cannot provide.", missing),
            "workshop_pool_failures": ("Sandbox preparations that failed in a row.", pool.failures if pool else 0),
        }
        if self.runtime.connections is not None:
            used, most = self.runtime.connections
            values["workshop_postgres_connections"] = ("Client connections PostgreSQL holds now.", used)
            values["workshop_postgres_max_connections"] = ("PostgreSQL's max_connections.", most)
        space = self.runtime.clone_space()
        if space is not None:
            values["workshop_clone_space_free_bytes"] = ("Free bytes where run databases are cloned.", space[0])
            values["workshop_clone_space_size_bytes"] = ("Size of the clone file system.", space[1])
        for name, (help_text, value) in values.items():
            yield GaugeMetricFamily(name, help_text, value=value)
        factory = self.runtime.factory
        if factory is not None:
            databases = CounterMetricFamily(
                "workshop_run_databases",
                "Run databases given to runs: cloned, reused (proven unchanged), or dropped as changed.",
                labels=["how"],
            )
            for how, count in factory.reuses.items():
                databases.add_metric([how], count)
            yield databases
            yield GaugeMetricFamily(
                "workshop_run_databases_parked",
                "Unchanged run databases kept for the next runs.",
                value=len(factory.parked()),
            )


CHECK_VERDICTS = ("passed", "not_yet", "not_judged")


def check_verdict(check: CheckVerdict) -> str:
    if check.passed:
        return "passed"
    return "not_yet" if check.judged else "not_judged"


class Metrics:
    def __init__(self, runtime: Runtime) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.runs = Counter("workshop_runs", "Runs finished, by status.", ["status"], registry=self.registry)
        self.refusals = Counter(
            "workshop_refusals", "Runs refused with 429, by reason.", ["reason"], registry=self.registry
        )
        for reason in REFUSAL_REASONS:  # every reason is exported from the start, at 0
            self.refusals.labels(reason)
        self.unavailable_runs = Counter(
            "workshop_runs_unavailable",
            "Runs answered 503 (not prepared or not admitted), by reason.",
            ["reason"],
            registry=self.registry,
        )
        for reason in UNAVAILABLE_REASONS:
            self.unavailable_runs.labels(reason)
        self.checks = Counter(
            "workshop_exercise_checks",
            "Exercise runs judged, by verdict: passed, not_yet, or not_judged (the check could not run).",
            ["verdict"],
            registry=self.registry,
        )
        for verdict in CHECK_VERDICTS:
            self.checks.labels(verdict)
        self.durations = Histogram(
            "workshop_run_duration_seconds",
            "Seconds per phase of a run.",
            ["phase"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.registry.register(RuntimeGauges(runtime))

    def observe(self, run: Run) -> None:
        self.runs.labels(run.outcome.status).inc()
        if run.check is not None:
            self.checks.labels(check_verdict(run.check)).inc()
        duration = run.result().duration.model_dump()
        for phase in PHASES:
            self.durations.labels(phase).observe(duration[phase])

    def refused(self, reason: str) -> None:
        self.refusals.labels(reason).inc()

    def unavailable(self, reason: str) -> None:
        self.unavailable_runs.labels(reason if reason in UNAVAILABLE_REASONS else "unavailable").inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
