"""What the system-call filter costs: the same figures with it and without it (WORKSHOP_SECCOMP=off).

Three figures, each measured with the filter on and off:

- a warm `print("hi")` through the runner (the reader's latency), one runner per setting;
- system calls inside a run (nanoseconds per `os.getppid()`, allowed by number alone,
  and per `socket.socket()`, whose family the filter checks);
- starting a bare sandbox (bubblewrap and the child's imports), the runs alternating.
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
CALLS = 100_000
SYSCALL_CODE = f"""
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
SYSCALLS = run_body(POOL_SNIPPET, SYSCALL_CODE)
SYSCALL_RUNS = 5
START_CODE = "import asyncpg, runner.child"


@dataclass
class SeccompSample:
    hi: dict[str, LatencySample] = field(default_factory=dict)
    per_call: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    """mode -> call -> nanoseconds per call, one value per run."""
    starts: dict[str, list[float]] = field(default_factory=dict)
    """mode -> seconds to start a bare sandbox that imports the child program."""
    errors: list[str] = field(default_factory=list)
    layers: dict[str, str] = field(default_factory=dict)
    """mode -> whether the runner's health listed the layer (checks the setting took effect)."""
    program_bytes: int = 0

    def call_ns(self, mode: str, call: str) -> float:
        return median(self.per_call.get(mode, {}).get(call, []))

    def start_median(self, mode: str) -> float:
        return median(self.starts.get(mode, []))

    @property
    def run_errors(self) -> int:
        return sum(sample.errors for sample in self.hi.values()) + len(self.errors)


def measure(runs: int, warmup: int, starts: int, cache_dir: Path, pool_size: int) -> SeccompSample:
    sample = SeccompSample()
    for mode in MODES:
        with RunnerProcess(cache_dir, pool_size, log_name=f"bench-runner-seccomp-{mode}.log") as runner:
            runner.env["WORKSHOP_SECCOMP"] = mode
            runner.start()
            isolation = runner.health()["isolation"]
            sample.layers[mode] = "listed" if "seccomp" in isolation["layers"] else "not listed"
            with httpx.Client(base_url=runner.url, timeout=120.0) as client:

                def refill() -> float:
                    return runner.wait_until_full(client, timeout=30.0)

                sample.hi[mode] = sequential(client, HI, label="hi", count=runs, warmup=warmup, before_each=refill)
                sample.per_call[mode] = {}
                for _ in range(SYSCALL_RUNS):
                    refill()
                    _syscall_run(client, mode, sample)
    sample.starts, sample.program_bytes = _sandbox_starts(starts)
    return sample


def _syscall_run(client: httpx.Client, mode: str, sample: SeccompSample) -> None:
    body = client.post("/api/runs", json=SYSCALLS).json()
    text = "".join(event.get("text", "") for event in body.get("output") or [])
    if body.get("status") != "ok":
        sample.errors.append(f"syscall run with the filter {mode}: {body.get('status')} {text[-200:]}")
        return
    for line in text.splitlines():
        call, value = line.split()
        sample.per_call[mode].setdefault(call, []).append(float(value))


def _sandbox_starts(count: int) -> tuple[dict[str, list[float]], int]:
    """Bare sandboxes (no runner, no database), the two settings alternating so load hits both alike."""
    filtered, plain = BubblewrapLauncher(), BubblewrapLauncher(seccomp=False)
    if filtered.seccomp is None:
        raise RuntimeError(f"no filter to measure: {filtered.seccomp_problem}")
    filtered.prepare_host()
    starts: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(count):
        for mode, launcher in (("on", filtered), ("off", plain)):
            fds = [filtered.seccomp.open()] if mode == "on" else []
            argv = [*launcher.bwrap_argv(fds[0] if fds else None), *CHILD_ARGV[:-2], "-c", START_CODE]
            began = time.perf_counter()
            try:
                subprocess.run(
                    argv,
                    check=True,
                    capture_output=True,
                    timeout=60,
                    env=scrubbed_env(3),
                    cwd="/",
                    pass_fds=fds,
                    **launcher.process_options(),
                )
            finally:
                for fd in fds:
                    os.close(fd)
            starts[mode].append(time.perf_counter() - began)
    return starts, len(filtered.seccomp.bpf)
