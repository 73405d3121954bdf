"""Which isolation layers are in force, and public mode's refusal to run without them."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx

from bench.processes import free_port
from runner.isolation import BubblewrapLauncher, PlainLauncher
from runner.settings import REPO_ROOT

from .conftest import TEST_CACHE, LiveRunner, output_text


def test_bubblewrap_is_in_force_when_installed(live_runner: LiveRunner) -> None:
    launcher = live_runner.runtime.launcher
    assert isinstance(launcher, BubblewrapLauncher), "CI installs bubblewrap: the sandbox must use it"
    health = httpx.get(f"{live_runner.url}/api/health").json()["isolation"]
    assert health["launcher"] == "bubblewrap"
    assert {"pid-namespace", "net-namespace", "mount-namespace", "unprivileged-uid"} <= set(health["layers"])
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


def test_plain_launcher_says_what_is_missing() -> None:
    assert "pid-namespace" in PlainLauncher.missing
    assert "net-namespace" in PlainLauncher.missing


def test_public_mode_refuses_to_start_without_namespaces() -> None:
    env = {**os.environ, "WORKSHOP_CACHE_DIR": str(TEST_CACHE / "public-weak"), "WORKSHOP_SANDBOX": "plain"}
    result = subprocess.run(
        [sys.executable, "-m", "runner", "serve", "--public", "--port", str(free_port())],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "refusing to serve in public mode" in result.stderr + result.stdout
