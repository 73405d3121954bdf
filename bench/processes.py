"""Local processes for the benchmarks and the tests: a free loopback port, and a stop that always ends.

Both start real `python -m runner ...` processes (and the tests a few more); this is
the one place that picks their ports and stops them. It lives in `bench/`, not in
`tests/`: the tests may import the bench's modules (a plain package, checked by
mypy --strict), while the bench must never import the test suite (its conftest
pulls in pytest and a whole in-process runner).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from typing import Any

KILL_WAIT = 10.0
"""Seconds a SIGKILLed process gets to be reaped; past that something is badly wrong (it raises)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the kernel's pick; free again once closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stop_process(process: subprocess.Popen[Any], timeout: float = 30.0, sig: int = signal.SIGTERM) -> int:
    """Send `sig`, wait up to `timeout` seconds, then SIGKILL; return the exit code.

    The process is gone when this returns: one that ignores `sig` is killed (and said
    so on stderr), one that is already gone is only reaped.
    """
    if process.poll() is None:
        process.send_signal(sig)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            print(f"pid {process.pid} ignored signal {sig} for {timeout:g} s; killing it", file=sys.stderr, flush=True)
            process.kill()
    return process.wait(KILL_WAIT)
