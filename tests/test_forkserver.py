"""The fork server: each forked sandbox gets namespaces of its own, and the server holds nothing secret."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from runner import forkserver
from runner.forkserver import can_fork_sandboxes
from runner.isolation import BubblewrapLauncher, scrubbed_env

from .conftest import LiveRunner

SNIPPET = "chapter_05/03_pool"
NAMESPACES = ("mnt", "pid", "ipc", "uts", "net")
PROBE = """
import json, os
KINDS = ("mnt", "pid", "ipc", "uts", "net")
status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\\t" in line)
print(json.dumps({
    "ns": {kind: os.readlink(f"/proc/self/ns/{kind}") for kind in KINDS},
    "pid": os.getpid(),
    "uid": os.getuid(),
    "processes": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
    "no_new_privs": status["NoNewPrivs"].strip(),
    "seccomp": status["Seccomp"].strip(),
    "capabilities": status["CapEff"].strip(),
    "tmp": sorted(os.listdir("/tmp")),
}))
open("/tmp/left-by-the-previous-run", "w").write("x")
"""


def forked(live_runner: LiveRunner) -> None:
    if can_fork_sandboxes() is not None:
        pytest.skip(f"no fork server here: {can_fork_sandboxes()}")
    assert live_runner.runtime.fork_server is not None, "the fork server did not start (see the log)"
    assert live_runner.runtime.launcher.name == "fork-server"


def probe(live_runner: LiveRunner) -> dict[str, Any]:
    response = live_runner.run(SNIPPET, code=PROBE)
    assert response.status_code == 200, response.text
    summary = response.json()
    assert summary["status"] == "ok", (summary["reason"], summary.get("output"))
    return dict(json.loads("".join(e["text"] for e in summary["output"] if e["stream"] == "stdout")))


def test_each_forked_sandbox_has_namespaces_of_its_own(live_runner: LiveRunner) -> None:
    forked(live_runner)
    server = live_runner.runtime.fork_server
    assert server is not None and server.process is not None
    first, second = probe(live_runner), probe(live_runner)
    for kind in NAMESPACES:
        for place in ("self", str(server.process.pid)):  # neither the runner's nor the fork server's
            outside = os.readlink(f"/proc/{place}/ns/{kind}")
            assert first["ns"][kind] != outside, f"the sandbox shares the {kind} namespace of {place}"
    assert first["pid"] == 2 and first["processes"] == [1, 2], first  # its init, itself: nothing else is seen
    assert (first["uid"], first["no_new_privs"], first["seccomp"]) == (65534, "1", "2"), first
    assert int(str(first["capabilities"]), 16) == 0, first
    # nothing in /tmp but where a bound folder of a checkout under /tmp is mounted (bubblewrap does the same)
    bound = {p.relative_to("/tmp").parts[0] for p in BubblewrapLauncher.readable_paths() if p.is_relative_to("/tmp")}
    assert set(first["tmp"]) == set(second["tmp"]) == bound, "a file of the previous run was left in /tmp"


def test_each_sandbox_is_cloned_straight_into_its_namespaces_as_their_pid_1(live_runner: LiveRunner) -> None:
    """No process between the server and a sandbox's init: every child of the server is PID 1 of its own namespace."""
    forked(live_runner)
    server = live_runner.runtime.fork_server
    pool = live_runner.runtime.pool
    assert server is not None and server.process is not None and pool is not None
    probe(live_runner)  # one run done: the pool holds sandboxes ready again, their roots children of the server
    roots = psutil.Process(server.process.pid).children()
    assert roots, "the server has no children: the pool was expected to hold ready sandboxes"
    outside = os.readlink(f"/proc/{server.process.pid}/ns/pid")
    for root in roots:
        status = dict(line.split(":\t", 1) for line in Path(f"/proc/{root.pid}/status").read_text().splitlines())
        assert status["NSpid"].split()[-1] == "1", (root.pid, status["NSpid"])
        assert os.readlink(f"/proc/{root.pid}/ns/pid") != outside


def test_the_fork_server_holds_nothing_secret(live_runner: LiveRunner) -> None:
    """A forked child inherits the server's memory: the admin credential must be in none of it."""
    forked(live_runner)
    runtime = live_runner.runtime
    server = runtime.fork_server
    assert server is not None and server.process is not None
    process = psutil.Process(server.process.pid)
    password = runtime.server.admin.password
    assert password, "the admin credential was expected to be a password"
    assert set(process.environ()) <= {*scrubbed_env(3), "WORKSHOP_ZYGOTE_CONFIG"}
    assert password not in " ".join([*process.cmdline(), *process.environ().values()])
    assert not memory_holds(process.pid, password.encode())
    assert memory_holds(os.getpid(), password.encode()), "the search does not find what is there"


def memory_holds(pid: int, needle: bytes) -> bool:
    """Whether any readable private mapping of the process holds `needle` (read as root, via /proc)."""
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as memory:
        for line in maps:
            fields = line.split()
            if "r" not in fields[1] or (len(fields) > 5 and fields[5].startswith("[v")):
                continue
            start, end = (int(value, 16) for value in fields[0].split("-"))
            try:
                memory.seek(start)
                if needle in memory.read(end - start):
                    return True
            except OSError:
                continue
    return False


@pytest.mark.anyio
async def test_a_fork_server_whose_sandboxes_cannot_start_is_found_out_before_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As in a container that refuses the namespaces: the runner must fall back to bubblewrap, not fail runs."""
    if can_fork_sandboxes() is not None:
        pytest.skip(f"no fork server here: {can_fork_sandboxes()}")
    bubblewrap = BubblewrapLauncher()
    assert bubblewrap.probe() is None
    monkeypatch.setattr(forkserver, "layout", lambda: [["bind", "/nonexistent-for-the-test"]])
    server = forkserver.ForkServer(bubblewrap)
    await server.start()
    try:
        problem = await forkserver.ForkSpawner(server).probe()
    finally:
        await server.close()
    assert problem is not None and "did not start" in problem, problem


def test_a_fork_server_that_died_is_started_again_and_no_run_gets_a_500(live_runner: LiveRunner) -> None:
    forked(live_runner)
    server = live_runner.runtime.fork_server
    assert server is not None and server.process is not None
    dead = server.process.pid
    os.kill(dead, signal.SIGKILL)  # its sandboxes, ready in the pool, die with it
    statuses = []
    for _ in range(6):  # the pool's dead sandboxes end their runs; the next ones come from a new server
        response = live_runner.run(SNIPPET, code='print("again")')
        assert response.status_code in (200, 503), response.text
        statuses.append(response.json().get("status"))
        if statuses[-1] == "ok":
            break
    assert statuses[-1] == "ok", statuses
    assert server.process.pid != dead and server.running


def test_a_forked_child_imports_nothing_the_fork_server_has_not_imported_already() -> None:
    """Each module the child program imports on its own costs every sandbox (about 0.6 ms for one here)."""
    script = (
        "import sys, runner.zygote as z; before = set(sys.modules); "
        "exec(z.CHILD_CODE, {'__name__': 'runner_child_probe'}); print(sorted(set(sys.modules) - before))"
    )
    found = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert found.stdout.strip() == "[]", f"imported by each sandbox's child, not by the fork server: {found.stdout}"


@pytest.mark.parametrize("changed", [False, True])
def test_the_lesson_utilities_preloaded_by_the_fork_server_are_read_again_once_changed(changed: bool) -> None:
    """A maintainer editing `code/utils.py` while the runner serves: the next run reads it afresh."""
    script = (
        "import sys, runner.lesson as lesson; lesson.preload_lesson_utilities(); first = sys.modules['code.utils']; "
        f"changed = {changed}; "
        "size = lesson.preloaded['code.utils'][1]; "
        "lesson.preloaded['code.utils'] = (lesson.preloaded['code.utils'][0], size + 1) if changed else "
        "lesson.preloaded['code.utils']; "
        "lesson.forget_changed_lesson_utilities(); import code.utils; print(sys.modules['code.utils'] is first)"
    )
    found = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert found.stdout.strip() == str(not changed), found.stderr


def test_the_fork_servers_warm_up_leaves_no_descriptor_thread_or_loop_behind() -> None:
    """Every child inherits what the server holds: the warm-up must end with nothing open."""
    script = (
        "import asyncio, os, threading, runner.zygote as z; before = sorted(os.listdir('/proc/self/fd')); "
        "z.warm_up(); after = sorted(os.listdir('/proc/self/fd')); "
        "print(before == after, threading.active_count(), asyncio.get_event_loop_policy()._local._loop)"
    )
    found = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert found.stdout.split() == ["True", "1", "None"], (found.stdout, found.stderr)
