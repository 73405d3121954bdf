"""A run database's size, watched against its quota while the run executes.

Growing a table is cheap for a sample (`INSERT ... SELECT generate_series`), and run
databases live in RAM (runner/clone_space.py), so the runner measures each one while
its run executes and ends the run when it passes `WORKSHOP_DB_SIZE_LIMIT`:

* on the embedded cluster, a `FolderProbe` sums the bytes allocated to the files of
  the database's own folder (`<tablespace>/PG_18_*/<oid>/`, or `base/<oid>/`): one
  directory listing, no SQL, so it can run every 0.1 s;
* on an external server, `pg_database_size` through the admin pool, every second.

The overshoot is what the run writes between two probes plus the time to stop it;
on the embedded cluster the pages a run's backends add to its database are also
charged to their memory group (runner/backend_memory.py), which the kernel keeps.

That charge also spares most listings (0.5 ms each, 324 files in a fresh clone).
Every page the run's backends add to the folder after a listing began is charged
to their group until it is freed, so the folder holds at most what the listing
counted plus the group's usage now (one number, read anyway for the memory limit).
While that sum is within the quota, the listing is skipped, and a run that writes
is listed every 0.1 s again once its group's usage could take the folder past its
quota. The first listing is spared too when the folder's size at the start is
known: every fresh clone is the same copy of the template, measured once, and a
parked database goes to the next run only when its run changed no row, which is
what adding pages to a relation takes (runner/reuse.py), so it has not grown.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

MIB = 1024 * 1024
FOLDER_INTERVAL = 0.1
SQL_INTERVAL = 1.0


def mib(size: int) -> str:
    return f"{size / MIB:.0f} MiB"


class SizeProbe(Protocol):
    interval: float
    """Seconds between two calls that the probe's cost allows."""
    start: int | None
    """The database's size when its run begins, when known without measuring (None: unknown)."""

    async def __call__(self) -> int: ...


def folder_size(folder: Path) -> int:
    """Bytes allocated to the files directly in `folder` (0 once it is gone: the database was dropped)."""
    total = 0
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                try:
                    total += entry.stat(follow_symlinks=False).st_blocks * 512
                except FileNotFoundError:  # a relation dropped or rewritten between listing and stat
                    continue
    except FileNotFoundError:
        return 0
    return total


class FolderProbe:
    """The size of a database on the embedded cluster, read from its folder."""

    interval = FOLDER_INTERVAL

    def __init__(self, folder: Path, start: int | None = None) -> None:
        self.folder = folder
        self.start = start

    async def __call__(self) -> int:
        return folder_size(self.folder)


class SqlProbe:
    """The size of a database as the server reports it (`pg_database_size`)."""

    interval = SQL_INTERVAL
    start: int | None = None

    def __init__(self, fetch: Callable[[], Awaitable[int]]) -> None:
        self.fetch = fetch

    async def __call__(self) -> int:
        return await self.fetch()


class Pressure(Protocol):
    limit: int

    def under_pressure(self) -> bool: ...

    def charged(self) -> int | None:
        """Bytes charged to the backends' group, the pages they added to any file included; None: unknown."""
        ...


@dataclass(frozen=True)
class Breach:
    """Why a run must end: its database passed its quota, or its backends reached their memory limit."""

    kind: str
    """`size` or `memory`."""
    reason: str
    size: int
    """The database's size when the breach was seen, in bytes."""


async def watch(
    probe: SizeProbe, size_limit: int, group: Pressure | None = None, memory_limit: int | None = None
) -> Breach:
    """Return as soon as the database passes `size_limit` or `group` reaches its limit; run it beside the run.

    The backend group is checked every 0.1 s whatever the probe's own interval; with a
    group, a listing the group's usage shows cannot pass the quota is skipped (see above)."""
    tick = min(probe.interval, FOLDER_INTERVAL) if group is not None else probe.interval
    loop = asyncio.get_running_loop()
    size, next_probe = 0, loop.time() + probe.interval  # a database as cloned (or proven unchanged) fits
    measured = False
    if group is not None and probe.start is not None:
        size, measured = probe.start, True  # the charge bound holds from the run's first page on
    while True:
        if loop.time() >= next_probe:
            next_probe = loop.time() + probe.interval
            charged = group.charged() if group is not None else None
            if not measured or charged is None or size + charged > size_limit:
                size, measured = await probe(), True
            if size > size_limit:
                return Breach("size", f"database size limit of {mib(size_limit)} reached ({mib(size)})", size)
        if group is not None and group.under_pressure():
            limit = memory_limit if memory_limit is not None else group.limit
            return Breach("memory", f"database memory limit of {mib(limit)} reached", size)
        await asyncio.sleep(tick)
