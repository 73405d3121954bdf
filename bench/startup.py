"""Start to ready: how long an operator (or a restart) waits before the first warm run.

Measured from spawning `python -m runner serve` to `/api/health` answering 200
with the pool full, with the cluster and the template already cached (one
unmeasured priming start first), which is the everyday restart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .server import RunnerProcess
from .stats import median


@dataclass
class StartupSample:
    pool_size: int
    priming: float = 0.0
    starts: list[float] = field(default_factory=list)
    stops: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return median(self.starts)

    @property
    def worst(self) -> float:
        return max(self.starts, default=float("nan"))


def measure_starts(cache_dir: Path, pool_size: int, count: int) -> StartupSample:
    sample = StartupSample(pool_size)
    for index in range(count + 1):
        runner = RunnerProcess(cache_dir, pool_size, log_name="bench-runner-startup.log")
        try:
            seconds = runner.start()
        finally:
            stopping = runner.stop()
        if index == 0:
            sample.priming = seconds
        else:
            sample.starts.append(seconds)
            sample.stops.append(stopping)
    return sample
