"""Sandboxes prepared ahead of time, each used once.

With a size of 0 every run prepares its own sandbox (the cold path). Otherwise the
pool keeps `size` ready and refills in the background after each take, with at
most `refill_concurrency` preparations at once so refills never starve the runs.

The pool owns its background work: every refill and every destruction is a task
it tracks, and `close` waits for all of them, so nothing outlives the pool.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from .sandbox import Sandbox, SandboxEnv

log = logging.getLogger("runner.pool")

RELEASE_DELAY = 0.05
"""Seconds between a run's end and the clean-up and refill it triggers (2 cores: the answer goes out first)."""
RETRY_DELAY = 1.0
"""Seconds before a failed preparation is retried (do not spin while the database is down)."""


@dataclass(frozen=True)
class PoolState:
    size: int
    ready: int
    busy: int
    preparing: int
    databases: frozenset[str]
    """Databases held by ready sandboxes."""

    @property
    def settled(self) -> bool:
        """Full and not preparing anything."""
        return self.ready >= self.size and self.preparing == 0


class SandboxPool:
    def __init__(
        self, env: SandboxEnv, size: int = 0, refill_concurrency: int = 1, prepare_concurrency: int = 2
    ) -> None:
        self.env = env
        self.size = size
        self._ready: list[Sandbox] = []
        self._preparing = 0
        self._refill_slots = asyncio.Semaphore(max(1, refill_concurrency))
        self._prepare_slots = asyncio.Semaphore(max(1, prepare_concurrency))
        """Preparations for callers at once: a burst is prepared a few at a time, first come first served,
        instead of every interpreter start slowing every other down on a few cores."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._leaving: set[Sandbox] = set()
        """Sandboxes handed back or discarded and not yet destroyed: close() destroys any a task never got to."""
        self.busy = 0
        self.failures = 0
        """Preparations that failed since the last one that worked."""
        self._closed = False

    @property
    def ready(self) -> int:
        return len(self._ready)

    def state(self) -> PoolState:
        return PoolState(
            self.size,
            len(self._ready),
            self.busy,
            self._preparing,
            frozenset(s.database.name for s in self._ready),
        )

    async def take(self) -> Sandbox:
        """A ready sandbox if there is one, otherwise one prepared for this caller.

        A caller that goes away while its sandbox is prepared cancels the preparation,
        which undoes whatever it had made.
        """
        if self._ready:
            sandbox = self._ready.pop(0)  # the refill waits for release(): it would compete with this run
        else:
            self._refill()
            async with self._prepare_slots:
                sandbox = await Sandbox.prepare(self.env)
        self.busy += 1
        return sandbox

    def release(self, sandbox: Sandbox) -> None:
        """Destroy a used sandbox and refill, a moment later: the run's answer goes out first."""
        self.busy -= 1
        self._leaving.add(sandbox)
        self._spawn(self._release(sandbox))

    async def _release(self, sandbox: Sandbox) -> None:
        try:
            if not self._closed:
                await asyncio.sleep(RELEASE_DELAY)
        finally:
            await self._destroy(sandbox)  # even when the pool closes meanwhile
        self._refill()

    def fill(self) -> None:
        self._refill()

    def discard_ready(self) -> None:
        """Throw away prepared sandboxes (after a Postgres crash their databases may be gone) and refill."""
        ready, self._ready = self._ready, []
        self._leaving.update(ready)
        for sandbox in ready:
            self._spawn(self._destroy(sandbox))
        self._refill()

    async def close(self) -> None:
        self._closed = True
        while self._tasks:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        # A task cancelled before its first step never runs its `finally`: what it was
        # to destroy is still in `_leaving` (destroy() is idempotent, so a repeat costs nothing).
        owned, self._ready = [*self._ready, *self._leaving], []
        self._leaving.clear()
        await asyncio.gather(*(s.destroy() for s in owned), return_exceptions=True)

    def _refill(self) -> None:
        while not self._closed and len(self._ready) + self._preparing < self.size:
            self._preparing += 1
            self._spawn(self._prepare_one())

    async def _prepare_one(self) -> None:
        try:
            async with self._refill_slots:
                sandbox = await Sandbox.prepare(self.env)
        except Exception as error:
            self.failures += 1
            log.warning("could not prepare a sandbox: %s", error)
            self._preparing -= 1
            await asyncio.sleep(RETRY_DELAY)
            self._refill()
            return
        except BaseException:
            self._preparing -= 1
            raise
        self._preparing -= 1
        self.failures = 0
        if self._closed:
            await sandbox.destroy()
        else:
            self._ready.append(sandbox)

    async def _destroy(self, sandbox: Sandbox) -> None:
        try:
            await sandbox.destroy()
        except Exception as error:
            log.warning("could not destroy sandbox %s: %s", sandbox.id, error)
        finally:
            self._leaving.discard(sandbox)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
