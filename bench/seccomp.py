"""What the system-call filter costs: the same figures with it and without it (WORKSHOP_SECCOMP=off).

- A warm `print("hi")` through the runner (the reader's latency): one runner per
  setting, one after the other (two runners cannot share the cluster at once).
- Bare sandboxes (bubblewrap and the child's Python, no runner, no database), the
  two settings alternating so that the machine's load hits both alike: the time to
  start one and import the child program, and the nanoseconds per system call in a
  loop (`os.getppid()`, allowed by its number alone, and `socket()` + `close()`,
  whose family the filter checks).
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from runner.isolation import CHILD_ARGV, BubblewrapLauncher, scrubbed_env

from .latency import LatencySample, sequential
from .runs import HI_CODE, POOL_SNIPPET, run_body
from .server import RunnerProcess
from .stats import median

MODES = ("on", "off")
HI = run_body(POOL_SNIPPET, HI_CODE)
START_CODE = "import asyncpg, runner.child"
CALLS = 100_000
LOOP_CODE = f"""
import os, socket, time
began = time.perf_counter_ns()
for _ in range({CALLS}):
    os.getppid()
print("getppid", (time.perf_counter_ns() - began) / {CALLS})
began = time.perf_counter_ns()
for _ in range({CALLS // 10}):
    socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close()
print("socket", (time.perf_counter_ns() - began) / {CALLS // 10})
"""


@dataclass
class SeccompSample:
    hi: dict[str, LatencySample] = field(default_factory=dict)
    starts: dict[str, list[float]] = field(default_factory=lambda: {mode: [] for mode in MODES})
    """mode -> seconds to start a bare sandbox that imports the child program."""
    per_call: dict[str, dict[str, list[float]]] = field(default_factory=lambda: {mode: {} for mode in MODES})
    """mode -> call -> nanoseconds per call, one value per sandbox."""
    layers: dict[str, str] = field(default_factory=dict)
    """mode -> whether the runner's health listed the layer (checks the setting took effect)."""
    program_bytes: int = 0

    def call_ns(self, mode: str, call: str) -> float:
        return median(self.per_call[mode].get(call, []))

    def start_median(self, mode: str) -> float:
        return median(self.starts[mode])

    @property
    def run_errors(self) -> int:
        return sum(sample.errors for sample in self.hi.values())


def measure(runs: int, warmup: int, sandboxes: int, cache_dir: Path, pool_size: int) -> SeccompSample:
    sample = SeccompSample()
    for mode in MODES:
        with RunnerProcess(cache_dir, pool_size, log_name=f"bench-runner-seccomp-{mode}.log") as runner:
            runner.env["WORKSHOP_SECCOMP"] = mode
            runner.start()
            layers = runner.health()["isolation"]["layers"]
            sample.layers[mode] = "listed" if "seccomp" in layers else "not listed"
            with httpx.Client(base_url=runner.url, timeout=120.0) as client:

                def refill() -> float:
                    return runner.wait_until_full(client, timeout=30.0)

                sample.hi[mode] = sequential(client, HI, label="hi", count=runs, warmup=warmup, before_each=refill)
    measure_bare_sandboxes(sample, sandboxes)
    return sample


def measure_bare_sandboxes(sample: SeccompSample, count: int) -> None:
    launchers = {"on": BubblewrapLauncher(), "off": BubblewrapLauncher(seccomp=False)}
    program = launchers["on"].seccomp
    if program is None:
        raise RuntimeError(f"no filter to measure: {launchers['on'].seccomp_problem}")
    launchers["on"].prepare_host()
    sample.program_bytes = len(program.bpf)
    for _ in range(count):
        for mode, launcher in launchers.items():
            began = time.perf_counter()
            _run_bare(launcher, START_CODE)
            sample.starts[mode].append(time.perf_counter() - began)
            for line in _run_bare(launcher, LOOP_CODE).splitlines():
                call, value = line.split()
                sample.per_call[mode].setdefault(call, []).append(float(value))


def _run_bare(launcher: BubblewrapLauncher, code: str) -> str:
    """Run `code` in a sandbox as the runner starts one (with the launcher's filter, if any); return stdout."""
    fds = [launcher.seccomp.open()] if launcher.seccomp else []
    try:
        result: subprocess.CompletedProcess[str] = subprocess.run(
            [*launcher.bwrap_argv(fds[0] if fds else None), *CHILD_ARGV[:-2], "-c", code],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
            env=scrubbed_env(3),
            cwd="/",
            pass_fds=fds,
            **launcher.process_options(),
        )
        return result.stdout
    finally:
        for fd in fds:
            os.close(fd)
