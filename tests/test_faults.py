"""Faults from outside the sample: Postgres dies during a run; the runner itself is killed mid-run.

The second test starts real `python -m runner serve` processes with a cluster of their
own (cached between sessions under the test cache), SIGKILLs one mid-run, and checks
that the next start cleans up after it. Every process started here is stopped here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import asyncpg
import httpx
import psutil
import pytest

from bench.processes import free_port, stop_process
from bench.server import clean_environment
from runner.databases import run_prefix
from runner.expected import normalise, read_expected
from runner.postgres import ServerAddress
from runner.settings import REPO_ROOT

from .conftest import TEST_CACHE, LiveRunner, output_text

SNIPPET = "chapter_05/03_pool"
NDJSON = "application/x-ndjson"


def stream_until(url: str, code: str, text: str, events: list[dict[str, Any]], seen: threading.Event) -> None:
    """POST a streamed run, keep its events, and set `seen` once `text` is in its output (or it ends)."""
    try:
        with httpx.stream(
            "POST",
            f"{url}/api/runs",
            json={"snippet": SNIPPET, "code": code},
            headers={"accept": NDJSON},
            timeout=httpx.Timeout(90, read=90),
        ) as response:
            for line in response.iter_lines():
                if line:
                    events.append(json.loads(line))
                    if text in "".join(e.get("text", "") for e in events if e["event"] == "output"):
                        seen.set()
    except httpx.HTTPError as error:  # a killed runner drops the connection: that is the point
        events.append({"event": "transport-error", "error": repr(error)})
    finally:
        seen.set()


async def wait_for_active_query(admin: ServerAddress, fragment: str, timeout: float) -> None:
    """Return once a backend is executing a query containing `fragment` (pg_stat_activity); fail at the deadline."""
    conn = await asyncpg.connect(**admin.connect_kwargs(), timeout=10)
    try:
        deadline = time.monotonic() + timeout
        while True:
            rows = await conn.fetch(
                "SELECT usename, state, query FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND backend_type = "
                "'client backend'"
            )
            if any(r["state"] == "active" and fragment in (r["query"] or "") for r in rows):
                return
            if time.monotonic() > deadline:
                seen = [(r["usename"], r["state"], r["query"]) for r in rows]
                pytest.fail(f"no active query with {fragment!r} within {timeout} s; the server's clients: {seen}")
            await asyncio.sleep(0.02)
    finally:
        await conn.close()


def assert_a_run_works(url: str) -> None:
    response = httpx.post(f"{url}/api/runs", json={"snippet": SNIPPET}, timeout=60)
    assert response.status_code == 200, response.text
    summary = response.json()
    assert summary["status"] == "ok", output_text(summary)
    assert normalise(output_text(summary)) == read_expected(SNIPPET)


# -- Postgres dies during a run --------------------------------------------------------------


def test_postgres_killed_during_a_query_fails_that_run_clearly_and_the_runner_recovers(
    live_runner: LiveRunner,
) -> None:
    server = live_runner.runtime.server
    postmaster = getattr(server, "pid", None)
    assert postmaster, "the tests run against the embedded cluster"
    code = (
        "import asyncpg\nconn = await asyncpg.connect()\nprint('querying', flush=True)\n"
        "print(await conn.fetchval('SELECT pg_sleep(5)'))\n"
    )
    events: list[dict[str, Any]] = []
    seen = threading.Event()
    thread = threading.Thread(target=stream_until, args=(live_runner.url, code, "querying", events, seen), daemon=True)
    thread.start()
    assert seen.wait(30) and any(e["event"] == "output" for e in events), events
    asyncio.run(wait_for_active_query(server.admin, "pg_sleep(5)", timeout=10))  # the server is running it
    killed_at = time.monotonic()
    os.kill(postmaster, signal.SIGKILL)

    health: list[tuple[float, int, str]] = []
    deadline = killed_at + 60
    while time.monotonic() < deadline:
        response = httpx.get(f"{live_runner.url}/api/health", timeout=10)
        health.append((round(time.monotonic() - killed_at, 2), response.status_code, response.json()["status"]))
        restarted = getattr(server, "pid", None) not in (None, postmaster)
        # a failed preparation can make health 503 a moment before the watchdog (every second) sees
        # PostgreSQL gone: recovered means 200 again with a new postmaster, not just 200 again
        if response.status_code == 200 and restarted and any(code == 503 for _, code, _ in health):
            break
        time.sleep(0.02)
    thread.join(60)
    assert not thread.is_alive()

    finished = events[-1]
    assert finished["event"] == "finished", events
    assert finished["status"] == "error", finished
    text = "".join(e["text"] for e in events if e["event"] == "output")
    assert "querying" in text
    assert "connection" in text.lower(), f"the error does not say what happened: {text!r}"
    assert finished["duration"]["run"] < 5, "the run waited for its query instead of failing with it"
    degraded = [(t, code, status) for t, code, status in health if code == 503]
    assert degraded and all(status == "degraded" for _, _, status in degraded), health
    assert health[-1][1] == 200 and health[-1][2] in {"ready", "degraded"}, health[-5:]
    assert getattr(server, "pid", None) not in (None, postmaster), "a new postmaster serves"
    assert_a_run_works(live_runner.url)
    assert_a_run_works(live_runner.url)


# -- the runner is killed mid-run ------------------------------------------------------------


class RunnerProcess:
    """`python -m runner serve` in a session of its own, logging into a file."""

    def __init__(self, cache_dir: Path, port: int, log_path: Path) -> None:
        env = clean_environment(
            {
                "WORKSHOP_CACHE_DIR": str(cache_dir),
                "WORKSHOP_INSTANCE": "faults",
                "WORKSHOP_RUN_TIMEOUT": "60",
                "WORKSHOP_LOG_LEVEL": "INFO",
            }
        )
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self._log: IO[bytes] = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "runner", "serve", "--port", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_healthy(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the runner exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                response = httpx.get(f"{self.url}/api/health", timeout=5)
                if response.status_code == 200:
                    return dict(response.json())
            time.sleep(0.2)
        pytest.fail(f"the runner was not healthy within {timeout} s:\n{self.log()[-3000:]}")

    def settled_names(self, cluster_root: Path, *, busy: int, full: bool, timeout: float = 30) -> list[str]:
        """Its run databases once each belongs to a ready or busy sandbox or is parked for reuse, none being
        made or destroyed.

        Polls the health's pool (`busy` sandboxes in use, every one ready if `full`), the parked databases
        (a used one is parked, or not, depending on logins under way when it is proven) and the cluster's
        names until they agree; fails at the deadline with what it saw last.
        """
        deadline = time.monotonic() + timeout
        while True:
            pool = self.wait_healthy(10)["pool"]
            parked = self.parked()
            names = asyncio.run(run_names(cluster_root))
            quiet = pool["busy"] == busy and (pool["ready"] == pool["size"] or not full)
            if quiet and len(names) == pool["ready"] + pool["busy"] + parked:
                return names
            if time.monotonic() > deadline:
                pytest.fail(
                    f"the pool and its databases did not settle within {timeout} s: {pool}, {parked} parked, {names}"
                )
            time.sleep(0.05)

    def parked(self) -> int:
        """Run databases parked for reuse, from /metrics."""
        metrics = httpx.get(f"{self.url}/metrics", timeout=5).text
        found = re.search(r"^workshop_run_databases_parked (\S+)$", metrics, re.MULTILINE)
        assert found, "no workshop_run_databases_parked in /metrics"
        return int(float(found.group(1)))

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)
        self._log.close()

    def stop(self) -> None:
        stop_process(self.process)
        self._log.close()


def postmaster_of(cluster_root: Path) -> psutil.Process | None:
    pidfile = cluster_root / "data" / "postmaster.pid"
    with contextlib.suppress(OSError, ValueError, IndexError, psutil.Error):
        proc = psutil.Process(int(pidfile.read_text().split()[0]))
        if proc.name() == "postgres":
            return proc
    return None


async def run_names(cluster_root: Path) -> list[str]:
    """Run databases and roles of the "faults" replica, asked as the cluster's admin."""
    password = (cluster_root / "admin-password").read_text().strip()
    conn = await asyncpg.connect(
        host=str(cluster_root / "socket"),
        port=5432,
        user="postgres",
        password=password,
        database="postgres",
        timeout=10,
    )
    try:
        rows = await conn.fetch(
            "SELECT datname AS name FROM pg_database WHERE starts_with(datname, $1) "
            "UNION SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1)",
            run_prefix("faults"),
        )
    finally:
        await conn.close()
    return sorted(r["name"] for r in rows)


def named_processes(name: str) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["name"]) if p.info["name"] == name]


@pytest.fixture
def fault_cache() -> Iterator[Path]:
    """The fault runners' own cache (the cluster is seeded once per machine); whatever they leave is stopped."""
    cache = TEST_CACHE / "fault-runner-killed"
    cache.mkdir(parents=True, exist_ok=True)
    yield cache
    postmaster = postmaster_of(cache / "runner-pg")
    if postmaster is not None:
        postmaster.send_signal(signal.SIGINT)
        with contextlib.suppress(psutil.Error):
            postmaster.wait(15)


def test_a_runner_killed_mid_run_cleans_up_after_itself_on_the_next_start(fault_cache: Path) -> None:
    cluster_root = fault_cache / "runner-pg"
    marker = "fk" + os.urandom(5).hex()
    first = RunnerProcess(fault_cache, free_port(), fault_cache / "first.log")
    second: RunnerProcess | None = None
    try:
        health = first.wait_healthy(240)  # the first time on a machine, the cluster is initialised and seeded
        first.settled_names(cluster_root, busy=0, full=True, timeout=120)  # a quiet start: the pool is full
        code = (
            f"import ctypes, asyncpg, time\nctypes.CDLL(None).prctl(15, b'{marker}', 0, 0, 0)\n"
            "conn = await asyncpg.connect()\nprint('running', flush=True)\ntime.sleep(60)\n"
        )
        events: list[dict[str, Any]] = []
        seen = threading.Event()
        client = threading.Thread(target=stream_until, args=(first.url, code, "running", events, seen), daemon=True)
        client.start()
        assert seen.wait(60) and any(e["event"] == "output" for e in events), events
        orphans = first.settled_names(cluster_root, busy=1, full=False)  # the run's database and the ready ones
        old_postmaster = postmaster_of(cluster_root)
        assert old_postmaster is not None

        first.kill()  # SIGKILL: no shutdown, no cleanup
        client.join(30)
        assert events[-1]["event"] == "transport-error", events[-1]
        assert old_postmaster.is_running(), "a killed runner leaves its postgres behind (the next start stops it)"
        deadline = time.monotonic() + 3
        while named_processes(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        survivors = named_processes(marker)
        for proc in survivors:  # stopped either way; only a launcher with a PID namespace promises it
            with contextlib.suppress(psutil.Error):
                proc.kill()
        if "pid-namespace" not in health["isolation"]["missing"]:
            assert survivors == [], f"the sandbox of the killed runner outlived it: {survivors}"

        second = RunnerProcess(fault_cache, free_port(), fault_cache / "second.log")
        second.wait_healthy(120)
        log = second.log()
        removed = re.search(r"removed (\d+) orphaned run database\(s\)/role\(s\): (.*)", log)
        assert removed, f"the second start did not report removing the orphans:\n{log[-3000:]}"
        assert int(removed.group(1)) == len(orphans)
        assert set(removed.group(2).split(", ")) == set(orphans)
        assert not old_postmaster.is_running(), "the orphaned postgres was stopped"
        still_there = set(asyncio.run(run_names(cluster_root))) & set(orphans)
        assert still_there == set(), still_there

        assert_a_run_works(second.url)
        # the used sandbox is destroyed in the background and the pool refilled: the prepared sandboxes' remain,
        # and the used database if it was parked for reuse
        expected = second.wait_healthy(10)["pool"]["size"]
        assert len(second.settled_names(cluster_root, busy=0, full=True)) - second.parked() == expected
    finally:
        if first.process.poll() is None:
            first.kill()
        if second is not None:
            second.stop()
            postmaster = postmaster_of(cluster_root)
            assert postmaster is None or not postmaster.is_running(), "a stopped runner stops its postgres"
        for proc in named_processes(marker):
            with contextlib.suppress(psutil.Error):
                proc.kill()
