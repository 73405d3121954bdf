"""Attacks on the machine's processes: CPU, processes, memory, output, time, escaping the run."""

from __future__ import annotations

import time

import httpx

from runner.channel import wire_size

from ..conftest import LiveRunner, output_text
from .support import (
    BackgroundRun,
    assert_next_run_is_pristine,
    attack,
    expect_contained,
    lines_starting,
    new_marker,
    survivors,
)

NAME_PROCESS = "import ctypes\nctypes.CDLL(None).prctl(15, b'{marker}', 0, 0, 0)  # PR_SET_NAME\n"


def test_an_infinite_loop_in_several_processes_is_stopped_and_the_runner_stays_responsive(
    live_runner: LiveRunner,
) -> None:
    marker = new_marker()
    burn = "print('burning', flush=True)\nwhile True:\n    pass\n"
    code = (
        "import os\nfor _ in range(4):\n    if os.fork() == 0:\n        break\n"
        + NAME_PROCESS.format(marker=marker)
        + burn
    )
    run = BackgroundRun(live_runner, code)
    try:
        assert run.wait_for("burning", 20), run.text
        slowest = 0.0
        for _ in range(5):  # five busy processes on the machine's cores: the API must still answer
            began = time.monotonic()
            assert httpx.get(f"{live_runner.url}/api/health", timeout=10).status_code == 200
            slowest = max(slowest, time.monotonic() - began)
            time.sleep(0.5)
    finally:
        summary = run.finish()
    limit = live_runner.settings.run_timeout
    assert summary["status"] == "timeout", summary
    assert limit <= summary["duration"]["run"] < limit + 5
    assert slowest < 2.0, f"the health check took {slowest:.2f} s while the sample burned CPU"
    assert survivors(marker) == []
    assert_next_run_is_pristine(live_runner)


FORK_BOMB = """
import os, select, sys, time
GENERATIONS = {generations}
reader, writer = os.pipe()
root = os.getpid()
failed = 0
for _ in range(GENERATIONS):
    try:
        os.fork()
    except OSError:
        failed += 1
os.write(writer, b"f" if failed else b"p")
if os.getpid() != root:
    os.closerange(0, 3)
    time.sleep({hold})
    os._exit(0)
os.close(writer)
seen = failures = 0
deadline = time.monotonic() + 6
while seen < 2 ** GENERATIONS and time.monotonic() < deadline:
    if select.select([reader], [], [], 0.2)[0]:
        chunk = os.read(reader, 4096)
        seen += len(chunk)
        failures += chunk.count(b"f")
print(f"processes={{seen}} failed_forks_in={{failures}}", flush=True)
time.sleep({hold})
"""


def test_a_fork_bomb_hits_the_process_limit_and_nothing_of_it_survives(live_runner: LiveRunner) -> None:
    marker = new_marker()
    generations = 9  # up to 512 processes, twice the sandbox's limit of 256
    code = NAME_PROCESS.format(marker=marker) + FORK_BOMB.format(generations=generations, hold=2)
    summary = attack(live_runner, code)
    report = lines_starting(output_text(summary), "processes=")
    assert report, output_text(summary)
    processes = int(report[0].split()[0].split("=")[1])
    left = survivors(marker)
    assert left == [], f"the fork bomb's processes outlived its run: {left[:5]}"
    expect_contained(
        live_runner,
        processes < 2**generations,
        "unprivileged-uid",
        f"all {processes} processes of the fork bomb were created (RLIMIT_NPROC not enforced)",
    )
    assert processes <= 256, report
    assert_next_run_is_pristine(live_runner)


THREADED_SAMPLE = """
import asyncio, asyncpg
conn = await asyncpg.connect()
brands = await conn.fetchval("SELECT count(*) FROM brand")
print("brands", brands, "in a thread:", await asyncio.to_thread(lambda: "yes"))
"""


def test_a_fork_bomb_does_not_starve_a_concurrent_run(live_runner: LiveRunner) -> None:
    """While one run's processes fill its limit, another reader's run (threads included) still works."""
    marker = new_marker()
    code = NAME_PROCESS.format(marker=marker) + FORK_BOMB.format(generations=9, hold=6)
    bomb = BackgroundRun(live_runner, code)
    try:
        assert bomb.wait_for("processes=", 30), bomb.text
        assert_next_run_is_pristine(live_runner)  # while the bomb's processes are all still alive
        neighbour = attack(live_runner, THREADED_SAMPLE)
        assert output_text(neighbour) == "brands 100 in a thread: yes\n", (
            f"a concurrent run could not start a thread while another run's fork bomb ({bomb.text.strip()}) "
            f"held the process limit: {output_text(neighbour)[-300:]}"
        )
    finally:
        bomb.finish()
        assert survivors(marker) == []
    assert_next_run_is_pristine(live_runner)


def test_a_memory_bomb_ends_the_run_not_the_runner(live_runner: LiveRunner) -> None:
    code = (
        "hog = []\n"
        "for _ in range(64):  # 4 GiB, four times the address-space limit\n"
        "    hog.append(b'x' * (64 << 20))\n"
        "print('allocated', len(hog) * 64, 'MiB')\n"
    )
    summary = attack(live_runner, code)
    text = output_text(summary)
    assert "allocated" not in text, text
    assert summary["status"] in {"error", "killed"}, summary
    if summary["status"] == "error":
        assert "MemoryError" in text
    assert summary["duration"]["run"] < live_runner.settings.run_timeout, "stopped by the limit, not the clock"
    assert httpx.get(f"{live_runner.url}/api/health").status_code == 200  # no blocking cause
    assert_next_run_is_pristine(live_runner)


def test_a_stderr_flood_is_truncated(live_runner: LiveRunner) -> None:
    code = "import sys\nwhile True:\n    sys.stderr.write('e' * 999 + '\\n')\n"
    summary = attack(live_runner, code)
    assert (summary["status"], summary["truncated"]) == ("killed", True), summary["reason"]
    assert {e["stream"] for e in summary["output"]} == {"stderr"}
    sent = sum(wire_size(e["text"]) for e in summary["output"])  # as charged: bytes on the wire, escapes included
    assert live_runner.settings.output_limit - 6 <= sent <= live_runner.settings.output_limit
    assert_next_run_is_pristine(live_runner)


def test_a_flood_from_a_grandchild_is_truncated_and_the_grandchild_killed(live_runner: LiveRunner) -> None:
    marker = new_marker()
    code = f"import os\nos.system('yes {marker}')\nprint('yes returned')\n"
    summary = attack(live_runner, code)
    assert (summary["status"], summary["truncated"]) == ("killed", True), summary["reason"]
    sent = sum(wire_size(e["text"]) for e in summary["output"])
    assert live_runner.settings.output_limit - 6 <= sent <= live_runner.settings.output_limit
    assert "yes returned" not in output_text(summary)
    assert survivors(marker) == []
    assert_next_run_is_pristine(live_runner)


def test_sleeping_past_the_timeout_with_sigterm_ignored_and_a_detached_grandchild(live_runner: LiveRunner) -> None:
    marker = new_marker()
    code = f"""
import asyncio, signal, subprocess, sys
signal.signal(signal.SIGTERM, signal.SIG_IGN)
subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(15, signal.SIG_IGN); time.sleep(300)",
                  "{marker}"], start_new_session=True)
print("sleeping", flush=True)
await asyncio.sleep(300)
"""
    summary = attack(live_runner, code)
    limit = live_runner.settings.run_timeout
    assert summary["status"] == "timeout", summary
    assert output_text(summary) == "sleeping\n"
    assert limit <= summary["duration"]["run"] < limit + 5
    assert survivors(marker) == []
    assert_next_run_is_pristine(live_runner)


def test_a_daemon_that_double_forks_does_not_outlive_the_run(live_runner: LiveRunner) -> None:
    marker = new_marker()
    code = f"""
import os, sys
pid = os.fork()
if pid == 0:
    os.setsid()
    if os.fork() == 0:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.closerange(3, 1024)
        os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(120)", "{marker}"])
    os._exit(0)
os.waitpid(pid, 0)
print("daemonized")
"""
    summary = attack(live_runner, code)
    assert output_text(summary) == "daemonized\n", summary
    left = survivors(marker, grace=0.5)
    expect_contained(live_runner, left == [], "pid-namespace", f"the daemon outlived its run: {left}")
    assert_next_run_is_pristine(live_runner)


def test_raising_the_rlimits_is_refused(live_runner: LiveRunner) -> None:
    code = """
import resource
for name in ("RLIMIT_NPROC", "RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_NOFILE"):
    which = getattr(resource, name)
    soft, hard = resource.getrlimit(which)
    try:
        resource.setrlimit(which, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        print("RAISED", name, soft, hard)
    except (ValueError, OSError) as error:
        print("refused", name, soft, hard)
"""
    text = output_text(attack(live_runner, code))
    assert len(lines_starting(text, "refused")) + len(lines_starting(text, "RAISED")) == 5, text
    for line in text.splitlines():
        _, _, soft, hard = line.split()
        assert soft == hard != str(-1), f"a limit is not in force: {line}"
    raised = lines_starting(text, "RAISED")
    expect_contained(live_runner, not raised, "unprivileged-uid", f"the sample raised its limits: {raised}")
    assert_next_run_is_pristine(live_runner)


def test_the_sample_runs_without_privileges(live_runner: LiveRunner) -> None:
    code = """
import os
print("uid", os.getuid(), os.geteuid())
for line in open("/proc/self/status"):
    if line.startswith(("CapEff:", "CapPrm:")):
        print("cap", *line.split())
"""
    text = output_text(attack(live_runner, code))
    uids = lines_starting(text, "uid ")[0].split()[1:]
    capabilities = {line.split()[1]: int(line.split()[2], 16) for line in lines_starting(text, "cap ")}
    assert set(capabilities) == {"CapEff:", "CapPrm:"}, text
    unprivileged = "0" not in uids and not any(capabilities.values())
    expect_contained(live_runner, unprivileged, "unprivileged-uid", f"the sample runs privileged: {text!r}")
    assert_next_run_is_pristine(live_runner)
