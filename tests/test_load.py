"""A short burst of concurrent clients against the live runner (loopback only, bounded in count and time).

Every answer is a finished run or a 429 with Retry-After, never a 5xx; afterwards
nothing of the runs is left: no processes, no databases or roles, no work folders.
"""

from __future__ import annotations

import contextlib
import json
import random
import secrets
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from runner.expected import normalise, read_expected

from .conftest import LiveRunner, output_text

CLIENTS = 24
SECONDS = 8.0
PUBLISHED = "chapter_05/03_pool"
NDJSON = "application/x-ndjson"


def named_sample(marker: str, body: str) -> str:
    """Sample code whose processes carry `marker` as their name, so any survivor can be found."""
    return f"import ctypes\nctypes.CDLL(None).prctl(15, b'{marker}', 0, 0, 0)\n{body}"


def marked_processes(marker: str) -> list[str]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.info["name"] == marker or marker in " ".join(proc.info["cmdline"] or []):
            found.append(f"{proc.pid} {proc.info['name']}")
    return found


def sandbox_processes(live_runner: LiveRunner) -> list[psutil.Process]:
    """Sandboxes of the live runner (it serves from this process): one child each, of the fork server when it
    forks them, otherwise of this process (bubblewrap)."""
    server = live_runner.runtime.fork_server
    if server is not None and server.process is not None:
        with contextlib.suppress(psutil.Error):
            return psutil.Process(server.process.pid).children()
        return []
    found = []
    for proc in psutil.Process().children():
        with contextlib.suppress(psutil.Error):
            if "runner.child" in " ".join(proc.cmdline()):
                found.append(proc)
    return found


def work_folders() -> set[str]:
    return {str(p) for p in Path(tempfile.gettempdir()).glob("workshop-run-*")}


def settle(live_runner: LiveRunner, timeout: float = 30) -> None:
    """Wait until no run is going on and the pool is full again (sandboxes are destroyed in the background)."""
    service, pool = live_runner.runtime.service, live_runner.runtime.pool
    assert service is not None and pool is not None
    deadline = time.monotonic() + timeout
    while True:
        state = pool.state()
        idle = service.running == 0 and service.waiting == 0 and state.busy == 0 and state.settled
        sandboxes, leftovers = len(sandbox_processes(live_runner)), leftover_databases(live_runner)
        if idle and sandboxes == state.ready and not leftovers:
            return
        if time.monotonic() > deadline:
            pytest.fail(
                f"the runner did not settle within {timeout} s: {service.running} running, {service.waiting} "
                f"waiting; pool {state.ready}/{state.size} ready, {state.busy} busy, {state.preparing} preparing; "
                f"{sandboxes} sandbox processes; databases of no prepared sandbox: {leftovers}"
            )
        time.sleep(0.1)


def leftover_databases(live_runner: LiveRunner) -> list[str]:
    """Run databases and roles that belong to no prepared sandbox."""
    factory, pool = live_runner.runtime.factory, live_runner.runtime.pool
    assert factory is not None and pool is not None
    names = live_runner.call(factory.leftovers())
    return sorted(set(names) - pool.state().databases - factory.parked())


def assert_nothing_left(live_runner: LiveRunner, marker: str, folders_before: set[str]) -> None:
    settle(live_runner)
    pool = live_runner.runtime.pool
    assert pool is not None
    assert marked_processes(marker) == [], "processes of the runs outlived them"
    sandboxes = sandbox_processes(live_runner)
    assert len(sandboxes) == pool.ready, f"{len(sandboxes)} sandbox processes for {pool.ready} prepared sandboxes"
    assert leftover_databases(live_runner) == []
    new_folders = work_folders() - folders_before
    assert len(new_folders) <= pool.ready, f"work folders left behind: {sorted(new_folders)}"


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    answers: list[tuple[int, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def record(self, status: int, kind: str, problem: str | None = None) -> None:
        with self.lock:
            self.answers.append((status, kind))
            if problem:
                self.problems.append(problem)

    def count(self, status: int) -> int:
        return sum(1 for answer, _ in self.answers if answer == status)


def judge(response: httpx.Response, summary: dict[str, Any] | None, expected: str, tally: Tally) -> None:
    status = response.status_code
    if status == 429:
        retry_after = response.headers.get("retry-after", "")
        ok = retry_after.isdigit() and int(retry_after) >= 1 and response.json().get("error") == "busy"
        tally.record(429, "busy", None if ok else f"429 without a usable Retry-After: {retry_after!r}")
        return
    if status != 200 or summary is None:
        tally.record(status, "other", f"{status}: {response.text[:300]}")
        return
    text = normalise(output_text(summary))
    if summary["status"] != "ok" or text != expected:
        tally.record(200, "bad run", f"run {summary['status']}: {text[:300]!r}")
        return
    tally.record(200, "ok")


def client(live_runner: LiveRunner, index: int, marker: str, stop_at: float, tally: Tally) -> None:
    stream = index % 4 == 3
    published = index % 2 == 1
    body: dict[str, Any] = {"snippet": PUBLISHED}
    expected = read_expected(PUBLISHED) or ""
    if not published:
        body["code"] = named_sample(
            marker,
            "import asyncpg\nconn = await asyncpg.connect()\n"
            "print(await conn.fetchval('SELECT count(*) FROM brand'))\nawait conn.close()\n",
        )
        expected = "100\n"
    headers = {"accept": NDJSON} if stream else {}
    rng = random.Random(index)
    with httpx.Client(base_url=live_runner.url, timeout=60) as http:
        while time.monotonic() < stop_at:
            try:
                if stream:
                    with http.stream("POST", "/api/runs", json=body, headers=headers) as response:
                        summary = None
                        if response.status_code == 200:
                            events = [json.loads(line) for line in response.iter_lines() if line]
                            summary = {**events[-1], "output": [e for e in events if e["event"] == "output"]}
                        else:
                            response.read()
                else:
                    response = http.post("/api/runs", json=body, headers=headers)
                    summary = response.json() if response.status_code == 200 else None
            except httpx.HTTPError as error:
                tally.record(0, "transport", f"transport error: {error!r}")
                continue
            judge(response, summary, expected, tally)
            time.sleep(rng.uniform(0.05, 0.25))


def in_threads(count: int, target: Callable[[int], None], timeout: float) -> None:
    threads = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.1, deadline - time.monotonic()))
    assert not any(thread.is_alive() for thread in threads), "a client did not finish in time"


def test_a_burst_of_clients_gets_runs_or_429_and_leaves_nothing_behind(live_runner: LiveRunner) -> None:
    settle(live_runner)
    folders_before = work_folders()
    marker = "ld" + secrets.token_hex(5)
    tally = Tally()
    stop_at = time.monotonic() + SECONDS
    in_threads(CLIENTS, lambda i: client(live_runner, i, marker, stop_at, tally), timeout=SECONDS + 90)

    assert tally.problems == [], tally.problems[:10]
    statuses = {status for status, _ in tally.answers}
    assert statuses <= {200, 429}, statuses
    assert tally.count(200) >= 8, f"only {tally.count(200)} runs finished in {SECONDS} s"
    assert tally.count(429) >= 1, "the burst never filled the queue: it tested nothing"
    assert {kind for _, kind in tally.answers} == {"ok", "busy"}
    assert_nothing_left(live_runner, marker, folders_before)


def test_clients_that_go_away_mid_stream_get_their_runs_killed(live_runner: LiveRunner) -> None:
    settle(live_runner)
    service = live_runner.runtime.service
    assert service is not None
    folders_before = work_folders()
    cancelled_before = live_runner.runs_finished("cancelled")
    marker = "dc" + secrets.token_hex(5)
    code = named_sample(marker, "import time\nprint('started', flush=True)\ntime.sleep(60)\n")
    capacity = live_runner.settings.max_concurrent_runs + live_runner.settings.max_queue
    left_early: list[int] = []

    def leave_after_first_output(index: int) -> None:
        body = {"snippet": PUBLISHED, "code": code}
        with httpx.stream(
            "POST", f"{live_runner.url}/api/runs", json=body, headers={"accept": NDJSON}, timeout=60
        ) as response:
            assert response.status_code == 200, response.status_code
            for line in response.iter_lines():
                if '"output"' in line and "started" in line:
                    left_early.append(index)
                    return  # closing the stream mid-run

    began = time.monotonic()
    in_threads(capacity, leave_after_first_output, timeout=60)
    assert sorted(left_early) == list(range(capacity))
    assert time.monotonic() - began < live_runner.settings.run_timeout, "runs waited for their timeout"
    deadline = time.monotonic() + 10
    while service.running and time.monotonic() < deadline:
        time.sleep(0.1)
    assert service.running == 0
    assert live_runner.runs_finished("cancelled") - cancelled_before == capacity
    assert_nothing_left(live_runner, marker, folders_before)
