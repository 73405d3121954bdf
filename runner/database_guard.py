"""What bounds a run's database while it runs: its size quota and the memory of its backends.

The sandbox asks the guard to `attach` right after its database is made (the run's
role cannot log in before: its backends join their memory group at login), to
`watch` beside the run, and to `release` before the database is dropped.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from . import db_quota
from .backend_memory import BackendGroup, BackendMemory, group_limit
from .databases import DatabaseFactory, RunDatabase
from .shielding import made_uncancelled


@dataclass(frozen=True)
class DatabaseGuard:
    factory: DatabaseFactory
    backend_memory: BackendMemory | None
    size_limit: int
    memory_limit: int

    async def attach(self, database: RunDatabase) -> BackendGroup | None:
        """The memory group of `database`'s backends, made in a worker thread.

        On cgroup v1, arming the group's usage threshold waits for an RCU grace period in the
        kernel (tens of ms on an idle machine): on the event loop, every run would stall."""
        if self.backend_memory is None:
            return None
        limit = group_limit(self.memory_limit, self.size_limit, database.in_memory)
        # cancelled meanwhile (a preparation abandoned), the thread still makes the group: removed at once
        return await made_uncancelled(asyncio.to_thread(self.backend_memory.create, database.name, limit), self.release)

    async def release(self, group: BackendGroup) -> None:
        if self.backend_memory is not None:
            await self.backend_memory.release(group, self.factory)

    async def watch(self, database: RunDatabase, group: BackendGroup | None) -> db_quota.Breach:
        """Return when the database passes its quota or its backends their memory limit."""
        probe = self.factory.size_probe(database)
        breach = await db_quota.watch(probe, self.size_limit, group, self.memory_limit)
        if breach.kind == "size":  # the backends are still writing: end them now, not at the drop
            await self.factory.terminate_backends(database.name)
        return breach
