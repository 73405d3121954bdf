"""The helpers that start and stop local processes for the bench and the tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

from bench.processes import free_port, stop_process

IGNORES_SIGTERM = (
    "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready', flush=True)\ntime.sleep(60)\n"
)


def started(code: str) -> subprocess.Popen[str]:
    """`python -c code`, once it has printed its first line (its signal handlers are in place)."""
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    return process


def test_a_free_port_can_be_listened_on() -> None:
    port = free_port()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()


def test_a_polite_process_stops_on_sigterm() -> None:
    process = started("import time\nprint('ready', flush=True)\ntime.sleep(60)\n")
    assert stop_process(process, timeout=30) == -signal.SIGTERM
    assert process.poll() is not None


def test_a_process_that_ignores_sigterm_is_killed() -> None:
    process = started(IGNORES_SIGTERM)
    assert stop_process(process, timeout=0.5) == -signal.SIGKILL
    assert process.poll() is not None


def test_a_process_already_gone_is_only_reaped() -> None:
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)  # it has exited; not reaped yet
    assert stop_process(process) == 3  # not -15: no signal was sent
