"""A real `python -m runner serve` in a subprocess, as an operator would start it.

The benchmarks measure the runner from the outside (over HTTP, on loopback), so
each configuration gets its own process, its own free port and only the
environment overrides it names; nothing of the caller's WORKSHOP_* settings
leaks in, so the runner's defaults are the ones measured.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

import httpx

from runner.lesson import REPO_ROOT

from .cpu import CpuAccount
from .processes import free_port, stop_process

DEFAULT_CACHE_DIR = Path("/tmp/workshop-bench-cache")
POLL_SECONDS = 0.01
"""Health is polled this often while waiting: fine enough for a start-up figure in seconds."""


class RunnerFailed(RuntimeError):
    """The runner did not start, or stopped answering; the message carries its log's tail."""


def wait_for_cluster_lock(cache_dir: Path, subdir: str, timeout: float) -> None:
    """Wait (bounded) while another process holds the cluster's lock, instead of failing at once.

    The runner allows one process per cluster directory; someone else's runner on
    the same cache would otherwise make the benchmark fail half-way.
    """
    lock_path = cache_dir / subdir / ".lock"
    if not lock_path.exists():
        return
    deadline = time.monotonic() + timeout
    announced = False
    while True:
        with open(lock_path, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pass
            else:
                fcntl.flock(handle, fcntl.LOCK_UN)
                return
        if time.monotonic() > deadline:
            raise RunnerFailed(f"another process holds {lock_path}; stop it (or pass --cache-dir) and retry")
        if not announced:
            print(f"  (waiting for another process to release {lock_path})", flush=True)
            announced = True
        time.sleep(0.5)


def clean_environment(overrides: dict[str, str]) -> dict[str, str]:
    """The caller's environment without any WORKSHOP_* setting, plus the given overrides."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("WORKSHOP_")}
    env.update(overrides)
    return env


class RunnerProcess:
    """One `python -m runner serve` on a free loopback port; a context manager that always stops it."""

    def __init__(
        self,
        cache_dir: Path,
        pool_size: int,
        log_name: str = "bench-runner.log",
        cpu: CpuAccount | None = None,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.cache_dir = cache_dir
        self.cpu = cpu
        """Where the runner's CPU (and its PostgreSQL's, its sandboxes') is counted, when given."""
        self.pool_size = pool_size
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = cache_dir / log_name
        self.process: subprocess.Popen[bytes] | None = None
        self._log: TextIO | None = None
        self.env = clean_environment(
            {
                "WORKSHOP_CACHE_DIR": str(cache_dir),
                "WORKSHOP_LOG_LEVEL": "WARNING",
                "WORKSHOP_POOL_SIZE": str(pool_size),
                **(settings or {}),
            }
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: float = 180.0) -> float:
        """Spawn the runner; return seconds from spawn to health 200 with the pool full."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        wait_for_cluster_lock(self.cache_dir, "runner-pg", timeout=60)
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        began = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "runner", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=REPO_ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=self.cpu.enter if self.cpu else None,  # before the runner spawns anything
        )
        if self.cpu is not None:
            self.cpu.watch(self.process.pid)
        try:
            with httpx.Client(base_url=self.url, timeout=2.0) as client:
                self.wait_until_full(client, timeout)
        except BaseException:
            self.stop()
            raise
        return time.perf_counter() - began

    def wait_until_full(self, client: httpx.Client, timeout: float = 10.0) -> float:
        """Poll /api/health until the pool is settled (its size ready, or its target after a burst, and nothing
        being prepared); return the seconds waited."""
        began = time.perf_counter()
        deadline = began + timeout
        while True:
            self._check_alive()
            with contextlib.suppress(httpx.TransportError, ValueError):
                response = client.get("/api/health")
                if response.status_code == 200:
                    pool = response.json()["pool"]
                    if pool["ready"] >= max(pool["size"], pool["target"]) and not pool["preparing"]:
                        return time.perf_counter() - began
            if time.perf_counter() > deadline:
                raise RunnerFailed(f"the runner's pool was not full within {timeout:g} s\n{self.log_tail()}")
            time.sleep(POLL_SECONDS)

    def health(self) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/api/health", timeout=5)
        body: dict[str, Any] = response.json()
        return body

    def stop(self, timeout: float = 30.0) -> float:
        """SIGTERM and wait (SIGKILL after `timeout`); return the seconds the shutdown took."""
        began = time.perf_counter()
        process, self.process = self.process, None
        if process is not None:
            stop_process(process, timeout)
        if self._log is not None:
            self._log.close()
            self._log = None
        return time.perf_counter() - began

    def __enter__(self) -> RunnerProcess:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    # -- details -----------------------------------------------------------------------------

    def _check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            raise RunnerFailed(f"the runner exited\n{self.log_tail()}")

    def log_tail(self, size: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except OSError:
            return "(no log)"
