"""How many runs this host can execute at once, derived from what a run may take.

A run that waits on a socket or a timer costs its memory reservation, not a core
(CPU is shared by weight and capped per run by its cgroup), so the default number
of run slots follows the memory budget, bounded by PostgreSQL's connections.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import psutil

MEMORY_SHARE = 0.5
"""Share of the memory available to the runner that runs may reserve (the rest: PostgreSQL, clones, the runner)."""
SERVER_CONNECTIONS = 300
"""`max_connections` of the embedded cluster."""
RESERVED_CONNECTIONS = 20
"""Connections kept for the runner's own use (admin pool, probes) and superusers."""
RUN_CONNECTIONS = 16
"""Connections one run's role may hold (`runner/databases.py`)."""
MAX_SLOTS = 64


def memory_available() -> int:
    """The host's memory, or the runner's own cgroup limit when that is lower (a container)."""
    total = psutil.virtual_memory().total
    for candidate in (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes")):
        with contextlib.suppress(OSError, ValueError):
            text = candidate.read_text().strip()
            if text.isdigit():
                total = min(total, int(text))
    return total


def cpus_available() -> float:
    """CPUs this process may use: its affinity, or its cgroup's CPU quota when that is lower (a container)."""
    cpus = float(len(os.sched_getaffinity(0)))
    with contextlib.suppress(OSError, ValueError):  # cgroup v2: "max 100000" or "150000 100000"
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, int(quota) / int(period))
    with contextlib.suppress(OSError, ValueError):  # cgroup v1: -1 when unlimited
        quota_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        if quota_us > 0 and period_us > 0:
            cpus = min(cpus, quota_us / period_us)
    return cpus


@dataclass(frozen=True)
class Capacity:
    slots: int
    rule: str


def derive_slots(run_memory: int) -> Capacity:
    memory = memory_available()
    by_memory = int(memory * MEMORY_SHARE // max(1, run_memory))
    by_connections = (SERVER_CONNECTIONS - RESERVED_CONNECTIONS) // RUN_CONNECTIONS
    slots = max(2, min(by_memory, by_connections, MAX_SLOTS))
    rule = (
        f"min({MEMORY_SHARE:.0%} of {memory / 2**30:.1f} GiB / {run_memory / 2**20:g} MiB per run = {by_memory}, "
        f"({SERVER_CONNECTIONS} - {RESERVED_CONNECTIONS}) connections / {RUN_CONNECTIONS} per run = {by_connections}, "
        f"{MAX_SLOTS}), at least 2"
    )
    return Capacity(slots, rule)
