"""What one benchmark run measures (the plan: full or quick) and what it collects (the results).

The plan fixes every iteration count and duration in one place, so the full run
stays under the time budget and `--quick` exercises the same code paths, shorter.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from runner.settings import Settings

from .burst import BurstSample, PacedSample
from .fidelity import Comparison
from .floor import FloorSample
from .latency import LatencySample
from .runs import HI_CODE, POOL_SNIPPET, run_body
from .seccomp import SeccompSample
from .startup import StartupSample
from .throughput import ThroughputSample

WARM_POOL_SIZE = 2
"""Used for the warm configuration when the runner's own default is 0 (no pool)."""


@dataclass(frozen=True)
class Plan:
    runs: int
    warmup: int
    throughput_seconds: float
    clients: int
    fidelity_repetitions: int
    starts: int
    load_clients: int = 32
    load_seconds: float = 10.0
    seccomp_starts: int = 10
    bursts: tuple[tuple[int, float], ...] = ((30, 1.0), (60, 2.0))
    """(runs, seconds): a room pressing Run."""
    paced_runs: int = 50
    paced_interval: float = 0.07
    floor_forks: int = 50
    floor_starts: int = 5
    floor_clones: int = 10


FULL = Plan(runs=50, warmup=3, throughput_seconds=20.0, clients=8, fidelity_repetitions=3, starts=3)
QUICK = Plan(
    runs=5,
    warmup=1,
    throughput_seconds=5.0,
    clients=8,
    fidelity_repetitions=1,
    starts=1,
    load_clients=16,
    load_seconds=3.0,
    seccomp_starts=2,
    paced_runs=10,
    floor_forks=10,
    floor_starts=2,
    floor_clones=3,
)

HI = run_body(POOL_SNIPPET, HI_CODE)
POOL = run_body(POOL_SNIPPET)


@dataclass
class Results:
    warm_size: int = WARM_POOL_SIZE
    latency: dict[tuple[str, str], LatencySample] = dataclasses.field(default_factory=dict)
    throughput: ThroughputSample | None = None
    load: ThroughputSample | None = None
    """More clients than the runner admits: every answer must be a finished run or a 429."""
    via_runner: Comparison | None = None
    via_direct: Comparison | None = None
    startup: StartupSample | None = None
    seccomp: SeccompSample | None = None
    layers: dict[str, tuple[LatencySample, list[str]]] | None = None
    """The same figures with the system-call filter and without it."""
    bursts: list[BurstSample] = dataclasses.field(default_factory=list)
    paced: PacedSample | None = None
    saturation_cpu: float = float("nan")
    """CPU seconds (runner, PostgreSQL, sandboxes) per completed run during the throughput section."""
    cpu_method: str = "not measured"
    floor: FloorSample | None = None
    admission: str = "unknown"
    """The runner's queue/concurrency settings as its health endpoint reports them."""
    failures: list[str] = dataclasses.field(default_factory=list)

    def run_errors(self) -> int:
        """Runs that did not end "ok" (429s excluded), across every section."""
        errors = sum(sample.errors for sample in self.latency.values())
        errors += self.throughput.errors if self.throughput else 0
        errors += self.load.errors if self.load else 0
        errors += sum(len(c.errors) for c in (self.via_runner, self.via_direct) if c)
        errors += self.seccomp.run_errors if self.seccomp else 0
        errors += sum(sample.errors for sample, _ in (self.layers or {}).values())
        errors += sum(sample.errors for sample in self.bursts)
        errors += self.paced.errors if self.paced else 0
        return errors


def default_pool_size() -> int:
    """The runner's own default WORKSHOP_POOL_SIZE (read from its settings, not assumed)."""
    return Settings.from_env({}).pool_size
