"""How a sandbox's process is started: the OS-level isolation layers in force.

`Launcher` turns "run the child program" into an argv and process options. The
plain launcher gives a new session, a private working directory, a scrubbed
environment and rlimits (set by the child before it runs any sample code).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

CHILD_ARGV = [sys.executable, "-I", "-u", "-X", "frozen_modules=on", "-m", "runner.child"]


@dataclass(frozen=True)
class Limits:
    """Per-process resource limits applied inside the sandbox."""

    cpu_seconds: int = 60
    address_space: int = 1024 * 1024 * 1024
    processes: int = 256
    file_size: int = 16 * 1024 * 1024
    open_files: int = 256

    def as_job(self) -> dict[str, int]:
        return {
            "cpu": self.cpu_seconds,
            "address_space": self.address_space,
            "processes": self.processes,
            "file_size": self.file_size,
            "open_files": self.open_files,
            "core": 0,
        }


@dataclass
class LaunchPlan:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    cleanup_dirs: list[Path] = field(default_factory=list)

    def cleanup(self) -> None:
        for path in self.cleanup_dirs:
            shutil.rmtree(path, ignore_errors=True)


def scrubbed_env(events_fd: int) -> dict[str, str]:
    """Nothing of the runner's environment (and so no credential) reaches a sample."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONIOENCODING": "utf-8",
        "WORKSHOP_EVENTS_FD": str(events_fd),
    }


class PlainLauncher:
    """Process-level isolation only: for machines without user namespaces."""

    name = "plain"
    layers: tuple[str, ...] = ("session", "rlimits", "scrubbed-env", "private-workdir")
    missing: tuple[str, ...] = (
        "pid-namespace",
        "net-namespace",
        "mount-namespace",
        "ipc-namespace",
        "unprivileged-uid",
    )

    def plan(self, events_fd: int) -> LaunchPlan:
        workdir = Path(tempfile.mkdtemp(prefix="workshop-run-"))
        return LaunchPlan(list(CHILD_ARGV), scrubbed_env(events_fd), workdir, [workdir])
