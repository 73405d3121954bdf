"""Limits that hold per run, across all its processes and channels: memory, processes, events, readers."""

from __future__ import annotations

import json
import time

import httpx
import psutil

from runner.channel import wire_size

from ..conftest import LiveRunner, output_text
from .support import (
    NDJSON,
    SNIPPET,
    BackgroundRun,
    assert_next_run_is_pristine,
    attack,
    expect_contained,
    new_marker,
    processes_with,
    survivors,
)

MIB = 1 << 20

SEVERAL_HOGS = """
import subprocess, sys
hog = "import time; b = bytearray({size} << 20); b[::4096] = b'x' * len(b[::4096]); time.sleep(3); print('kept')"
workers = [subprocess.Popen([sys.executable, "-c", hog, "{marker}"]) for _ in range({count})]
print("exits", sorted(w.wait() for w in workers))
"""


def test_several_processes_share_one_memory_limit(live_runner: LiveRunner) -> None:
    marker = new_marker()
    limit_mib = live_runner.runtime.settings.run_memory // MIB
    count, size = 6, 150  # each far below the per-process rlimit, together well above the run's memory limit
    assert count * size > limit_mib
    before = psutil.virtual_memory().used
    summary = attack(live_runner, SEVERAL_HOGS.format(size=size, count=count, marker=marker))
    text = output_text(summary)
    expect_contained(live_runner, text.count("kept") < count, "cgroups", f"{count} x {size} MiB all allocated")
    assert summary["status"] == "killed", summary
    assert summary["reason"] == f"memory limit of {limit_mib} MiB reached"
    resources = summary["resources"]
    assert resources is not None and resources["memory_peak_bytes"] <= live_runner.runtime.settings.run_memory
    assert psutil.virtual_memory().used - before < 2 * limit_mib * MIB
    assert survivors(marker) == []
    assert httpx.get(f"{live_runner.url}/api/health").status_code == 200  # no blocking cause
    assert_next_run_is_pristine(live_runner)


def test_a_fork_bomb_meets_the_run_s_process_limit_and_others_still_run(live_runner: LiveRunner) -> None:
    marker = new_marker()
    code = f"""
import os, time
born = 0
try:
    for _ in range(500):
        if os.fork() == 0:
            time.sleep(30)  # {marker}
            os._exit(0)
        born += 1
except OSError as error:
    print("refused after", born, type(error).__name__, "end")
"""
    bomb = BackgroundRun(live_runner, code)
    try:
        assert bomb.wait_for(" end\n", 20), bomb.text
        born = int(bomb.text.split("refused after")[1].split()[0])
        assert born < live_runner.runtime.settings.run_pids
        neighbour = live_runner.run(SNIPPET)  # the limit is the bomb's own, not the uid's
        assert neighbour.status_code == 200 and neighbour.json()["status"] == "ok", neighbour.text
    finally:
        bomb.finish()
    assert survivors(marker) == []


FLOOD_EVENTS = """
import json, os
fd = int(os.environ["WORKSHOP_EVENTS_FD"])
line = (json.dumps({{"event": "timing", "name": "x" * 150, "seconds": 1.0, "start": 0.0}}) + "\\n").encode()
for _ in range({count}):
    os.write(fd, line * 50)
print("flooded")
"""


def test_an_event_flood_is_charged_to_the_output_budget_as_it_streams(live_runner: LiveRunner) -> None:
    code = FLOOD_EVENTS.format(count=5000)  # about 50 MiB of well-formed events
    received = 0
    events = []
    with live_runner.stream(SNIPPET, code) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            received += len(line) + 1
            events.append(json.loads(line))
    finished = events[-1]
    assert finished["event"] == "finished"
    assert (finished["status"], finished["truncated"]) == ("killed", True), finished
    assert finished["reason"] == "output limit of 256 KiB reached"
    assert received < live_runner.settings.output_limit + 64 * 1024, f"{received} bytes reached the client"
    assert_next_run_is_pristine(live_runner)


def test_bad_lines_on_the_events_channel_end_the_run_promptly(live_runner: LiveRunner) -> None:
    shapes = {
        "oversized": 'os.write(fd, b\'{"event": "timing", "name": "\' + b"z" * (1 << 20) + b\'"}\\n\')',
        "malformed": "os.write(fd, b'{not json\\n')",
        "unknown": 'os.write(fd, b\'{"event": "finished", "status": "ok", "verdict": "pass"}\\n\')',
        "forged-output": 'os.write(fd, b\'{"event": "output", "stream": "stdout", "text": "forged", "t": 0}\\n\')',
    }
    for name, write in shapes.items():
        code = f"import os, time\nfd = int(os.environ['WORKSHOP_EVENTS_FD'])\n{write}\ntime.sleep(25)\n"
        summary = attack(live_runner, code)
        assert summary["status"] == "killed", (name, summary)
        assert "events channel" in (summary["reason"] or ""), (name, summary["reason"])
        assert summary["duration"]["run"] < 5, (name, summary["duration"])
        assert "forged" not in output_text(summary)
    assert_next_run_is_pristine(live_runner)


def test_a_client_that_stops_reading_costs_a_bounded_buffer_and_the_run_is_stopped(live_runner: LiveRunner) -> None:
    marker = new_marker()
    code = (
        f"open('/proc/self/comm', 'w').write('{marker}')\n"
        "import sys\nwhile True:\n    sys.stdout.write('s' * 65535 + '\\n')\n"
    )
    process = psutil.Process()
    with live_runner.stream(SNIPPET, code) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        assert json.loads(next(lines))["event"] == "started"
        rss_before = process.memory_info().rss
        peak = rss_before
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # not reading: the run must stop by itself
            peak = max(peak, process.memory_info().rss)
            if not processes_with(marker):
                break
            time.sleep(0.2)
        assert not processes_with(marker), "the run went on while nobody read its output"
        assert peak - rss_before < 16 * MIB, f"the runner grew by {(peak - rss_before) >> 20} MiB"
        rest = [json.loads(line) for line in lines]
    finished = rest[-1]
    assert finished["event"] == "finished"
    # whichever comes first: the output budget, or the stall timeout when the budget exceeds the buffers
    assert finished["status"] == "killed", finished
    assert "not read" in finished["reason"] or "output limit" in finished["reason"], finished
    sent = sum(wire_size(e["text"]) for e in rest if e["event"] == "output")
    assert 0 < sent < 4 * MIB
    assert_next_run_is_pristine(live_runner)


def test_the_summary_is_plain_json(live_runner: LiveRunner) -> None:
    response = httpx.post(
        f"{live_runner.url}/api/runs", json={"snippet": SNIPPET}, headers={"accept": NDJSON}, timeout=30
    )
    assert response.status_code == 200
    kinds = [json.loads(line)["event"] for line in response.text.splitlines()]
    assert kinds[0] == "started" and kinds[-1] == "finished"


GROW_DATABASE = """
import asyncpg
conn = await asyncpg.connect()
await conn.execute("CREATE UNLOGGED TABLE hog (a bigint, b bigint, c bigint, d bigint)")
written = 0
try:
    for _ in range(200):  # about 60 MiB each, up to 12 GiB in all
        await conn.execute("INSERT INTO hog SELECT g, g, g, g FROM generate_series(1, 1000000) g")
        written += 1
    print("grew without limit", written)
except Exception as error:
    print("stopped", type(error).__name__, written)
"""


def test_a_database_growing_past_its_quota_ends_the_run_and_the_next_run_is_pristine(live_runner: LiveRunner) -> None:
    runtime = live_runner.runtime
    postmaster = getattr(runtime.server, "pid", None)
    summary = attack(live_runner, GROW_DATABASE)
    text = output_text(summary)
    assert "grew without limit" not in text, text
    limit_mib = runtime.settings.db_size_limit // MIB
    assert summary["status"] == "killed", summary
    assert summary["reason"].startswith(f"database size limit of {limit_mib} MiB reached"), summary["reason"]
    assert getattr(runtime.server, "pid", None) == postmaster, "PostgreSQL was restarted"
    assert_next_run_is_pristine(live_runner)


HUNGRY_QUERY = """
import asyncpg
conn = await asyncpg.connect()
await conn.execute("SET work_mem = '2GB'; SET hash_mem_multiplier = 10")
try:
    rows = await conn.fetchval(
        "SELECT count(*) FROM (SELECT g, count(*) FROM generate_series(1, 30000000) g GROUP BY g) s"
    )
    print("no limit", rows)
except Exception as error:
    print("refused", type(error).__name__)
"""


def test_a_backend_asked_for_gigabytes_is_bounded_and_postgres_keeps_serving_others(live_runner: LiveRunner) -> None:
    runtime = live_runner.runtime
    postmaster = getattr(runtime.server, "pid", None)
    neighbour = BackgroundRun(
        live_runner,
        "import asyncpg, asyncio\nc = await asyncpg.connect()\nprint('in')\n"
        "await asyncio.sleep(4)\nprint(await c.fetchval('SELECT 41 + 1'))\n",
    )
    try:
        assert neighbour.wait_for("in\n", 20), neighbour.text
        summary = attack(live_runner, HUNGRY_QUERY)
        text = output_text(summary)
        expect_contained(live_runner, "no limit" not in text, "cgroups", "a backend took gigabytes")
        assert "refused" in text or summary["status"] == "killed", summary
    finally:
        finished = neighbour.finish()
    assert finished["status"] == "ok" and "42" in neighbour.text, neighbour.text
    assert getattr(runtime.server, "pid", None) == postmaster, "PostgreSQL was restarted"
    assert_next_run_is_pristine(live_runner)
