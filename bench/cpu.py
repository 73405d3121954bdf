"""CPU spent by the runner, its PostgreSQL and every sandbox, all together.

The bench puts the runner (or itself) into a control group of the v1 `cpuacct`
hierarchy before anything is spawned: PostgreSQL, bubblewrap and the sandboxes are
its descendants and stay in it (the runner moves sandboxes between memory, pids and
cpu groups, never cpuacct ones), so `cpuacct.usage` counts all three, processes
that have exited included. Where no such hierarchy is writable, the fallback sums
the process tree from /proc: a live process's own times plus those of the children
it reaped; it misses processes reaped outside the tree (a sandbox's init killed
with its parent), so it reads low, and the report says which method was used.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

import psutil

CPUACCT = Path("/sys/fs/cgroup/cpuacct")


def tree_cpu(pid: int) -> float:
    """Seconds of CPU (user + system) used by `pid` and its descendants, reaped ones included."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return float("nan")
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue  # reaped since the listing: its time is now in its parent's children times
        total += times.user + times.system + times.children_user + times.children_system
    return total


class CpuAccount:
    """One group of the cpuacct hierarchy (or, failing that, a process tree) to read CPU seconds from."""

    def __init__(self) -> None:
        self.folder: Path | None = None
        self.root_pid: int | None = None
        if (CPUACCT / "cpuacct.usage").is_file():
            folder = CPUACCT / f"workshop-bench-{os.getpid()}-{secrets.token_hex(3)}"
            with contextlib.suppress(OSError):
                folder.mkdir()
                self.folder = folder

    @property
    def method(self) -> str:
        return "cgroup v1 cpuacct (every process, exited ones included)" if self.folder else "/proc tree (reads low)"

    def enter(self) -> None:
        """Move the calling process into the group: what it spawns afterwards is counted (use as preexec_fn)."""
        if self.folder is not None:
            (self.folder / "cgroup.procs").write_text(str(os.getpid()))

    def watch(self, pid: int) -> None:
        """The tree the fallback reads."""
        self.root_pid = pid

    def seconds(self) -> float:
        if self.folder is not None:
            return int((self.folder / "cpuacct.usage").read_text()) / 1e9
        return tree_cpu(self.root_pid) if self.root_pid is not None else float("nan")

    def close(self) -> None:
        """Move this process back to the root group and remove the group (once its processes are gone)."""
        if self.folder is None:
            return
        with contextlib.suppress(OSError):
            if str(os.getpid()) in (self.folder / "cgroup.procs").read_text().split():
                (CPUACCT / "cgroup.procs").write_text(str(os.getpid()))
        with contextlib.suppress(OSError):
            self.folder.rmdir()
