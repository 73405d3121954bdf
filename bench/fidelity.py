"""Fidelity: does a sample teach the same lesson through the runner as on a learner's machine?

The 10,000-query comparison's point is a ratio (sequential / concurrent time),
so that is what is compared: from the `timings` of the runner's summary, and from
the same functions run directly (bench.direct) against the learners' database
(`python -m runner db`, the same embedded PostgreSQL, reached over TCP as the
chapter shows). A sandbox that distorts the ratio would teach the wrong lesson.
The two are interleaved repetition by repetition, so a machine whose load drifts
(CI, other jobs) skews both alike rather than one of them.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TextIO

import httpx

from runner.lesson import REPO_ROOT

from .processes import free_port, stop_process
from .runs import COMPARISON_SNIPPET, post_run, run_body
from .server import RunnerFailed, clean_environment, wait_for_cluster_lock
from .stats import median, ratio

SEQUENTIAL = "query_products_sequentially"
CONCURRENT = "query_products_concurrently"
READY_LINE = "PostgreSQL is ready"


@dataclass
class Comparison:
    """Seconds of each half of the comparison, one entry per repetition."""

    sequential: list[float] = field(default_factory=list)
    concurrent: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ratios(self) -> list[float]:
        return [ratio(s, c) for s, c in zip(self.sequential, self.concurrent, strict=True)]

    @property
    def median_ratio(self) -> float:
        return median(self.ratios)

    @property
    def fastest_ratio(self) -> float:
        """Ratio of the fastest halves: on a shared machine noise only ever adds time, so this is steadier."""
        return ratio(min(self.sequential, default=math.nan), min(self.concurrent, default=math.nan))

    def extend(self, other: Comparison) -> None:
        self.sequential += other.sequential
        self.concurrent += other.concurrent
        self.errors += other.errors


def through_runner(client: httpx.Client, repetitions: int, before_each: Callable[[], float]) -> Comparison:
    """Run the published sample through the runner; read both halves from its timing events."""
    comparison = Comparison()
    for _ in range(repetitions):
        before_each()
        result = post_run(client, run_body(COMPARISON_SNIPPET))
        if not result.ok or SEQUENTIAL not in result.timings or CONCURRENT not in result.timings:
            comparison.errors.append(f"HTTP {result.http_status} {result.status}: {result.detail or result.timings}")
            continue
        comparison.sequential.append(result.timings[SEQUENTIAL])
        comparison.concurrent.append(result.timings[CONCURRENT])
    return comparison


class LearnerDatabase:
    """`python -m runner db --port <free>` with its own cache directory, stopped on exit."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir
        self.port = free_port()
        self.log_path = cache_dir / "bench-learner-db.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: TextIO | None = None

    def start(self, timeout: float = 180.0) -> float:
        """Start it and wait for its "ready" line (printed after seeding); return the seconds taken."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        wait_for_cluster_lock(self.cache_dir, "learner-pg", timeout=60)
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        began = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "runner", "db", "--port", str(self.port)],
            cwd=REPO_ROOT,
            env=clean_environment({"WORKSHOP_CACHE_DIR": str(self.cache_dir), "WORKSHOP_LOG_LEVEL": "WARNING"}),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = began + timeout
        while READY_LINE not in self.log_path.read_text(errors="replace"):
            if self.process.poll() is not None or time.perf_counter() > deadline:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                self.stop()
                raise RunnerFailed(f"the learners' database did not become ready:\n{tail}")
            time.sleep(0.05)
        return time.perf_counter() - began

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            stop_process(process)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> LearnerDatabase:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


def direct(port: int, repetitions: int, timeout: float = 180.0) -> Comparison:
    """Run bench.direct once per repetition, each in a fresh interpreter."""
    comparison = Comparison()
    for _ in range(repetitions):
        try:
            completed = subprocess.run(
                [sys.executable, "-m", "bench.direct", "--port", str(port)],
                cwd=REPO_ROOT,
                env=clean_environment({}),
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            comparison.errors.append(f"bench.direct took more than {timeout:g} s")
            continue
        if completed.returncode != 0:
            comparison.errors.append(completed.stderr.strip()[-500:])
            continue
        seconds = json.loads(completed.stdout.strip().splitlines()[-1])
        comparison.sequential.append(float(seconds["sequential"]))
        comparison.concurrent.append(float(seconds["concurrent"]))
    return comparison
