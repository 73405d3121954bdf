"""Which isolation layers are in force, and public mode's refusal to run without them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.processes import free_port
from runner import cgroups
from runner.cgroups import CgroupLimits
from runner.forkserver import ForkLauncher
from runner.isolation import BubblewrapLauncher, Launcher, PlainLauncher
from runner.settings import REPO_ROOT

from .conftest import TEST_CACHE, LiveRunner, output_text


def test_bubblewrap_is_in_force_when_installed(live_runner: LiveRunner) -> None:
    launcher = live_runner.runtime.launcher
    bubblewrap = launcher.bubblewrap if isinstance(launcher, ForkLauncher) else launcher  # the fork server's layers
    assert isinstance(bubblewrap, BubblewrapLauncher), "CI installs bubblewrap: the sandbox must use it"
    health = httpx.get(f"{live_runner.url}/api/health").json()["isolation"]
    assert health["launcher"] == launcher.name
    assert {"pid-namespace", "net-namespace", "mount-namespace", "unprivileged-uid", "seccomp"} <= set(
        health["layers"]
    ), "CI installs libseccomp2 and pyseccomp: every sandbox must get the system-call filter"
    assert health["missing"] == []


def test_inside_the_sandbox(live_runner: LiveRunner) -> None:
    code = """
import os, socket
print("pid", os.getpid())
print("uid", os.getuid())
print("hostname", socket.gethostname())
print("repo visible", os.path.exists("/work") and os.listdir("/work"))
try:
    open("/usr/evil", "w")
except OSError as error:
    print("write-usr", error.strerror)
"""
    text = output_text(live_runner.run("chapter_05/03_pool", code=code).json())
    lines = dict(line.split(" ", 1) for line in text.splitlines())
    assert int(lines["pid"]) < 10  # a PID namespace of its own
    assert lines["uid"] != "0"
    assert lines["hostname"] == "sandbox"
    assert lines["write-usr"] == "Read-only file system"


NAMESPACE_LAYERS = {
    "pid": "pid-namespace",
    "net": "net-namespace",
    "mnt": "mount-namespace",
    "ipc": "ipc-namespace",
    "uts": "uts-namespace",
}
PROBE = """
import json, os
print(json.dumps({
    "namespaces": {kind: os.readlink(f"/proc/self/ns/{kind}") for kind in %r},
    "parent": os.getppid(),
    "sees_test": os.path.exists("/proc/%d"),
}))
"""


def probe_through(launcher: Launcher) -> dict[str, Any]:
    """Start what the launcher would start for a run, with a probe in place of the child program."""
    plan = launcher.plan(events_fd=3)
    try:
        assert plan.argv[-2:] == ["-m", "runner.child"], plan.argv
        result = subprocess.run(
            [*plan.argv[:-2], "-c", PROBE % (list(NAMESPACE_LAYERS), os.getpid())],
            env=plan.env,
            cwd=plan.cwd,
            pass_fds=plan.pass_fds,
            capture_output=True,
            text=True,
            timeout=30,
            **plan.process_options,
        )
    finally:
        plan.cleanup()
    assert result.returncode == 0, result.stderr
    observed: dict[str, Any] = json.loads(result.stdout)
    return observed


def assert_layers_match(launcher: Launcher, observed: dict[str, Any]) -> None:
    """A namespace of its own is named among the layers; one shared with the host, among the missing."""
    for kind, layer in NAMESPACE_LAYERS.items():
        own = observed["namespaces"][kind] != os.readlink(f"/proc/self/ns/{kind}")
        claims = f"{launcher.name}: {layer} {own=}, layers {launcher.layers}, missing {launcher.missing}"
        assert (layer in launcher.layers) == own, claims
        assert (layer in launcher.missing) == (not own), claims


def test_plain_launcher_shares_the_host_pid_namespace_and_says_so() -> None:
    launcher = PlainLauncher()
    observed = probe_through(launcher)
    assert observed["parent"] == os.getpid(), "its parent is this test: the same PID namespace"
    assert observed["sees_test"], "it can see this test's process"
    assert "pid-namespace" in launcher.missing and "pid-namespace" not in launcher.layers
    assert_layers_match(launcher, observed)


def test_bubblewrap_launcher_gives_a_pid_namespace_of_its_own_and_says_so() -> None:
    launcher = BubblewrapLauncher()
    problem = launcher.probe()  # also lets the sandbox user reach the bound folders, as the runner does
    assert problem is None, f"CI installs bubblewrap: {problem}"
    observed = probe_through(launcher)
    assert observed["parent"] != os.getpid() and not observed["sees_test"], observed
    assert "pid-namespace" in launcher.layers and not launcher.missing
    assert_layers_match(launcher, observed)


def test_public_mode_refuses_to_start_without_namespaces() -> None:
    result = serve_public({"WORKSHOP_SANDBOX": "plain"})
    assert result.returncode != 0
    assert "refusing to serve in public mode" in result.stderr + result.stdout


def test_public_mode_refuses_to_start_without_the_system_call_filter() -> None:
    result = serve_public({"WORKSHOP_SECCOMP": "off"})
    assert result.returncode != 0
    assert "refusing to serve in public mode: sandboxes lack seccomp" in result.stderr + result.stdout
    assert "sandboxes run WITHOUT a seccomp filter: it was turned off" in result.stderr + result.stdout


def serve_public(settings: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WORKSHOP_CACHE_DIR": str(TEST_CACHE / "public-weak"), **settings}
    return subprocess.run(
        [sys.executable, "-m", "runner", "serve", "--public", "--port", str(free_port())],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_run_group_found_empty_is_not_read_again_until_someone_is_added(live_runner: LiveRunner) -> None:
    """A sandbox asks for its group's kill several times; once it is empty, later asks read nothing,
    and a member added afterwards is still killed."""
    pool = live_runner.runtime.pool
    driver = pool.env.cgroups if pool is not None else None
    if driver is None or driver.version != "v1":
        pytest.skip("the v1 cgroup layer is not in force")
    group = driver.create(f"run-test-{os.getpid()}", CgroupLimits())
    reads: list[str] = []
    original = cgroups._procs

    def counted(folders: Iterable[Path]) -> list[int]:
        reads.append("read")
        return original(folders)

    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(cgroups, "_procs", counted)
            for round_ in range(2):
                sleeper = subprocess.Popen(["sleep", "60"])
                group.add([sleeper.pid])
                group.kill()
                assert sleeper.wait(timeout=10) == -9, f"round {round_}: the member was not killed"
                group.kill()  # reaped now: found empty
                emptied_after = len(reads)
                group.kill()
                group.kill()
                assert len(reads) == emptied_after, f"round {round_}: an emptied group was read again"
    finally:
        assert group.remove()
