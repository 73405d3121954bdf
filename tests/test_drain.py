"""A restart is no outage: on SIGTERM a real `python -m runner serve` drains, then exits 0."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from runner.settings import REPO_ROOT

from .conftest import TEST_CACHE, free_port

SNIPPET = "chapter_05/06_sync_generator"
LONG_RUN = "import time\nfor i in range(8):\n    print('tick', i, flush=True)\n    time.sleep(0.5)\nprint('done')\n"
"""About 4 s of work, printing as it goes: long enough to be running when the signal comes."""


@pytest.fixture
def serving(tmp_path: Path) -> Any:
    port = free_port()
    log = tmp_path / "runner.log"
    env = {
        **os.environ,
        "WORKSHOP_CACHE_DIR": str(TEST_CACHE / "drain"),
        "WORKSHOP_DRAIN_SECONDS": "30",
        "WORKSHOP_POOL_SIZE": "1",
        "WORKSHOP_LOG_FORMAT": "json",
    }
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "runner", "serve", "--port", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240  # the first start on a machine initialises and seeds a cluster
    while True:
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "the runner did not become ready:\n" + log.read_text()[-3000:]
        try:
            if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    yield proc, url, log
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def test_sigterm_drains_refuses_new_runs_finishes_the_running_one_and_exits_0(serving: Any) -> None:
    proc, url, log = serving
    events: queue.Queue[dict[str, Any] | BaseException] = queue.Queue()

    def stream() -> None:
        try:
            body = {"snippet": SNIPPET, "code": LONG_RUN}
            headers = {"accept": "application/x-ndjson"}
            with httpx.stream("POST", f"{url}/api/runs", json=body, headers=headers, timeout=60) as response:
                assert response.status_code == 200
                assert response.headers["x-run-id"]
                for line in response.iter_lines():
                    events.put(json.loads(line))
        except BaseException as error:
            events.put(error)

    reader = threading.Thread(target=stream, daemon=True)
    reader.start()
    seen: list[dict[str, Any]] = []
    while not any(e.get("event") == "output" for e in seen):  # the run is under way
        item = events.get(timeout=30)
        assert not isinstance(item, BaseException), item
        seen.append(item)

    proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    deadline = time.monotonic() + 5  # the signal is handled on the runner's loop, a moment later
    while (health := httpx.get(f"{url}/api/health", timeout=5)).json()["status"] != "draining":
        assert time.monotonic() < deadline, health.text
    assert health.status_code == 503, health.text
    refused = httpx.post(f"{url}/api/runs", json={"snippet": SNIPPET}, timeout=10)
    assert refused.status_code == 503 and refused.json()["error"] == "draining", refused.text
    assert int(refused.headers["retry-after"]) >= 1
    assert proc.poll() is None, "the runner stopped before its run finished"

    while (item := events.get(timeout=40)) and not (isinstance(item, dict) and item.get("event") == "finished"):
        assert not isinstance(item, BaseException), item
        seen.append(item)
    assert isinstance(item, dict) and item["status"] == "ok", item
    text = "".join(e["text"] for e in seen if e.get("event") == "output")
    assert "tick 7" in text and "done" in text
    assert proc.wait(timeout=30) == 0, log.read_text()[-3000:]
    drained_in = time.monotonic() - signalled
    assert drained_in < 25, drained_in
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert any("draining" in line["message"] for line in lines), lines[-10:]
