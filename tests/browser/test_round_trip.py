"""The simulated network round trip, end to end: the reader's choice, and the speed-up it makes visible.

The live test asks the real runner of this package (`python -m runner serve`, the
limits a reader gets: 30 s per run, one CPU per run) for the pool comparison with
the longest round trip offered, while two other runs hold sandboxes, databases and
connections of their own and query as they go.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
from playwright.sync_api import Locator, Page, expect

from bench.round_trip import READERS_CODE, READERS_SNIPPET
from runner.round_trip import ROUND_TRIPS_MS

CHAPTER = "/chapter-05/"
COMPARISON = "chapter_05/04_pool_vs_sequential"
POOL = "chapter_05/03_pool"
LONGEST = ROUND_TRIPS_MS[-1]
MEASURED_RUNS = 2
LOAD_RUNS = 2


def sample(page: Page, snippet: str) -> Locator:
    block = page.locator(f'[data-snippet="{snippet}"][data-workshop-ready]')
    expect(block).to_have_count(1)
    return block


def choice(block: Locator) -> Locator:
    return block.get_by_label("Simulated network round trip")


# ---------------------------------------------------------------------------------- the reader's choice


def test_a_chosen_round_trip_is_sent_remembered_and_shown(page: Page, runner_url: str) -> None:
    sent: list[Any] = []
    page.on("request", lambda r: sent.append(r.post_data_json) if r.url.endswith("/api/runs") else None)
    page.goto(runner_url + CHAPTER)
    block = sample(page, POOL)
    expect(choice(block)).to_have_value("0")
    choice(block).select_option(label=f"{LONGEST} ms")
    # one choice per page: every sample's control follows
    expect(choice(sample(page, COMPARISON))).to_have_value(str(LONGEST))
    block.get_by_role("button", name="Run", exact=False).first.click()
    expect(block.get_by_role("status")).to_have_text(
        re.compile(rf"^Done in \d+\.\d\d s with a simulated {LONGEST} ms round trip$")
    )
    assert sent[-1] == {"snippet": POOL, "network_rtt_ms": LONGEST}
    expect(block).to_have_attribute("data-round-trip", str(LONGEST))  # what the runner's summary said

    page.reload()
    block = sample(page, POOL)
    expect(choice(block)).to_have_value(str(LONGEST))
    choice(block).select_option("0")
    block.get_by_role("button", name="Run", exact=False).first.click()
    expect(block.get_by_role("status")).to_have_text(re.compile(r"^Done in \d+\.\d\d s$"))
    assert sent[-1] == {"snippet": POOL}
    expect(block).to_have_attribute("data-round-trip", "0")


def timings_stream(concurrent: float, sequential: float) -> str:
    events = [
        {"event": "started", "id": "stub", "snippet": COMPARISON},
        {"event": "timing", "name": "query_products_concurrently", "seconds": concurrent, "start": 0.1},
        {"event": "timing", "name": "query_products_sequentially", "seconds": sequential, "start": 0.2},
        {
            "event": "finished", "id": "stub", "snippet": COMPARISON, "status": "ok", "exit_code": 0,
            "truncated": False, "edited": False, "duration": {"queue": 0, "setup": 0, "run": 3, "total": 3},
            "network": {"round_trip_ms": 0},
        },
    ]  # fmt: skip
    return "".join(json.dumps(event) + "\n" for event in events)


def test_a_small_speed_up_is_explained_not_announced(page: Page, runner_url: str) -> None:
    answers = [timings_stream(1.2, 1.1), timings_stream(1.0, 3.4), timings_stream(2.0, 2.5)]
    page.route(
        "**/api/runs",
        lambda route: route.fulfill(status=200, headers={"Content-Type": "application/x-ndjson"}, body=answers.pop(0)),
    )
    page.goto(runner_url + CHAPTER)
    block = sample(page, COMPARISON)
    ratio = block.locator(".workshop-run__ratio")
    block.get_by_role("button", name="Run", exact=False).first.click()
    expect(ratio).to_have_text(
        "Concurrent was not clearly faster than sequential (1.20 s against 1.10 s): on a local socket a query "
        "hardly waits, so the work is CPU-bound and the concurrent half shares the cores with the database; "
        "choose a longer simulated network round trip and run it again."
    )
    expect(block.get_by_role("status")).to_contain_text("Done in")
    block.get_by_role("button", name="Run", exact=False).first.click()
    expect(ratio).to_have_text("Concurrent was 3.4× faster than sequential (1.00 s against 3.40 s).")
    choice(block).select_option(str(LONGEST))
    block.get_by_role("button", name="Run", exact=False).first.click()
    expect(ratio).to_have_text(
        f"Concurrent was not clearly faster than sequential (2.00 s against 2.50 s): a {LONGEST} ms round trip "
        "is still short next to the computing, or the runner is busy with other runs; run it again in a moment."
    )


# ---------------------------------------------------------------------------------- the speed-up, under load


@contextlib.contextmanager
def other_runs(url: str, count: int) -> Iterator[None]:
    """`count` runs of other readers' code (bench.round_trip.READERS_CODE), running until the block ends."""
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(httpx.Client(base_url=url, timeout=60))
        lines = []  # held: a line iterator that is let go closes its response, and the run is cancelled
        for _ in range(count):
            response = stack.enter_context(
                client.stream(
                    "POST",
                    "/api/runs",
                    json={"snippet": READERS_SNIPPET, "code": READERS_CODE},
                    headers={"accept": "application/x-ndjson"},
                )
            )
            assert response.status_code == 200, response.read()
            lines.append(response.iter_lines())
            first = json.loads(next(lines[-1]))
            assert first["event"] == "started", first
        yield


def test_the_round_trip_makes_the_concurrent_half_three_times_faster_while_others_run(runner_url: str) -> None:
    figures = []
    for _ in range(MEASURED_RUNS):
        with other_runs(runner_url, LOAD_RUNS):
            answer = httpx.post(
                f"{runner_url}/api/runs", json={"snippet": COMPARISON, "network_rtt_ms": LONGEST}, timeout=60
            )
            running = httpx.get(f"{runner_url}/api/health", timeout=10).json()["runs"]["running"]
        summary = answer.json()
        assert answer.status_code == 200 and summary["status"] == "ok", json.dumps(summary)[:3000]
        assert running == LOAD_RUNS, f"the other runs ended before the comparison ({running} running): {summary}"
        assert summary["network"] == {"round_trip_ms": LONGEST}
        seconds = {t["name"]: t["seconds"] for t in summary["timings"]}
        sequential, concurrent = seconds["query_products_sequentially"], seconds["query_products_concurrently"]
        figures.append((round(sequential / concurrent, 2), sequential, concurrent, summary["duration"]["run"]))
    for ratio, sequential, concurrent, run in figures:
        assert ratio >= 3, f"concurrent only {ratio}x faster ({concurrent:.2f} s against {sequential:.2f} s): {figures}"
        assert run < 25, f"the run took {run:.1f} s, too close to the 30 s limit: {figures}"
