"""Fair share on the live runner: one reader's sleeping runs never hold another reader's run."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx

from runner.admission import Share

from .conftest import LiveRunner
from .hostile.support import new_marker, survivors

SNIPPET = "chapter_05/03_pool"


@contextlib.contextmanager
def public_share(live_runner: LiveRunner, slots: int, share: Share) -> Iterator[None]:
    """The shared runner with public mode's shares, for the length of a test."""
    service = live_runner.runtime.service
    assert service is not None
    admission = service.admission
    saved = admission.slots, admission.share
    admission.slots, admission.share = slots, share
    try:
        yield
    finally:
        admission.slots, admission.share = saved


def post(live_runner: LiveRunner, client: str, code: str) -> httpx.Response:
    """A run from `client`, as the trusted proxy in front of the runner names it."""
    return httpx.post(
        f"{live_runner.url}/api/runs",
        json={"snippet": SNIPPET, "code": code},
        headers={"x-forwarded-for": client},
        timeout=60,
    )


def in_background(live_runner: LiveRunner, client: str, code: str, answers: list[Any]) -> threading.Thread:
    thread = threading.Thread(target=lambda: answers.append(post(live_runner, client, code)), daemon=True)
    thread.start()
    return thread


def wait_until_running(live_runner: LiveRunner, count: int, waiting: int = 0, timeout: float = 20) -> None:
    """Until `count` runs started and `waiting` more are in line (the requests arrive in no set order)."""
    service = live_runner.runtime.service
    assert service is not None
    deadline = time.monotonic() + timeout
    while service.running < count or service.waiting < waiting:
        assert time.monotonic() < deadline, f"{service.running} of {count} runs started, {service.waiting} waiting"
        time.sleep(0.05)


def test_sleeping_runs_of_several_clients_do_not_hold_another_clients_run(live_runner: LiveRunner) -> None:
    marker = new_marker()
    sleeper = f"import time\ntime.sleep(6)  # {marker}\nprint('woke')\n"
    answers: list[Any] = []
    with public_share(live_runner, slots=4, share=Share(per_client=1, client_queue=3, run_seconds_per_minute=0)):
        threads = [in_background(live_runner, "203.0.113.1", sleeper, answers) for _ in range(3)]  # one hog
        threads += [in_background(live_runner, client, sleeper, answers) for client in ("203.0.113.2", "203.0.113.3")]
        wait_until_running(live_runner, 3, waiting=2)
        service = live_runner.runtime.service
        assert service is not None
        assert service.running == 3 and service.waiting == 2, "the hog runs one at a time, the others wait"
        latencies = []
        for _ in range(3):
            began = time.monotonic()
            response = post(live_runner, "198.51.100.7", "print('hi')")
            latencies.append(time.monotonic() - began)
            assert response.status_code == 200 and response.json()["status"] == "ok", response.text
        assert max(latencies) < 1.5, f"print('hi') waited {max(latencies):.2f} s behind other clients' sleepers"
        for thread in threads:
            thread.join(60)
    assert [a.status_code for a in answers] == [200] * 5
    assert survivors(marker) == []


def test_a_client_over_its_run_time_budget_gets_a_429_with_the_reason(live_runner: LiveRunner) -> None:
    with public_share(live_runner, slots=2, share=Share(per_client=1, client_queue=3, run_seconds_per_minute=1)):
        first = post(live_runner, "203.0.113.9", "import time\ntime.sleep(1.5)\n")
        assert first.status_code == 200 and first.json()["status"] == "ok"
        refused = post(live_runner, "203.0.113.9", "print('again')")
        assert refused.status_code == 429, refused.text
        body = refused.json()
        assert body["error"] == "run_time_budget" and "run time" in body["detail"], body
        assert int(refused.headers["retry-after"]) >= 1
        other = post(live_runner, "203.0.113.10", "print('hi')")
        assert other.status_code == 200, "another client's budget is its own"
    metrics = httpx.get(f"{live_runner.url}/metrics").text
    assert 'workshop_refusals_total{reason="run_time_budget"}' in metrics
