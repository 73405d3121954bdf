"""Sandboxes prepared ahead of time, each used once.

With a size of 0 every run prepares its own sandbox (the cold path). Otherwise the
pool keeps `size` ready and refills in the background after each take, with at
most `refill_concurrency` preparations at once so refills never starve the runs.
"""

from __future__ import annotations

import asyncio
import logging

from .databases import DatabaseFactory
from .isolation import Launcher
from .sandbox import Sandbox

log = logging.getLogger("runner.pool")

RELEASE_DELAY = 0.05
"""Seconds between a run's end and the clean-up and refill it triggers (2 cores: don't compete)."""


class SandboxPool:
    def __init__(
        self, factory: DatabaseFactory, launcher: Launcher, size: int = 0, refill_concurrency: int = 1
    ) -> None:
        self.factory = factory
        self.launcher = launcher
        self.size = size
        self._ready: list[Sandbox] = []
        self._refilling = 0
        self._refill_slots = asyncio.Semaphore(max(1, refill_concurrency))
        self._tasks: set[asyncio.Task[None]] = set()
        self._destroying: set[asyncio.Task[None]] = set()
        self._released: list[Sandbox] = []  # used, waiting for RELEASE_DELAY before their destruction
        self.busy = 0
        self._closed = False

    @property
    def ready(self) -> int:
        return len(self._ready)

    @property
    def settled(self) -> bool:
        """Full and not preparing anything: what tests wait for before counting databases."""
        return len(self._ready) >= self.size and self._refilling == 0

    def held_databases(self) -> set[str]:
        return {sandbox.database.name for sandbox in self._ready}

    async def take(self) -> Sandbox:
        """A ready sandbox if there is one, otherwise a freshly prepared one."""
        if self._ready:
            sandbox = self._ready.pop(0)  # the refill waits for release(): it would compete with this run
        else:
            self._refill()
            sandbox = await self._prepare_for_caller()
        self.busy += 1
        return sandbox

    async def _prepare_for_caller(self) -> Sandbox:
        """Prepare a sandbox; if the caller goes away meanwhile, the sandbox is destroyed, not leaked."""
        preparing = asyncio.ensure_future(Sandbox.prepare(self.factory, self.launcher))
        try:
            return await asyncio.shield(preparing)
        except asyncio.CancelledError:
            preparing.add_done_callback(self._destroy_unclaimed)
            raise

    def _destroy_unclaimed(self, preparing: asyncio.Future[Sandbox]) -> None:
        if not preparing.cancelled() and preparing.exception() is None:
            self._spawn_destroy(preparing.result())

    def release(self, sandbox: Sandbox) -> None:
        """Destroy a used sandbox and refill, a moment later: the run's answer goes out first."""
        self.busy -= 1
        self._released.append(sandbox)
        asyncio.get_running_loop().call_later(RELEASE_DELAY, self._after_release, sandbox)

    def _after_release(self, sandbox: Sandbox) -> None:
        if sandbox not in self._released:
            return  # close() got to it first
        self._released.remove(sandbox)
        self._spawn_destroy(sandbox)
        self._refill()

    def fill(self) -> None:
        self._refill()

    def discard_ready(self) -> None:
        """Throw away prepared sandboxes (after a Postgres crash their databases may be gone) and refill."""
        ready, self._ready = self._ready, []
        for sandbox in ready:
            self._spawn_destroy(sandbox)
        self._refill()

    async def close(self) -> None:
        """Stop preparing, and destroy every sandbox the pool still owns: ready, released or being destroyed."""
        self._closed = True
        for task in self._tasks - self._destroying:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        ready, self._ready = self._ready + self._released, []
        self._released = []
        await asyncio.gather(*(s.destroy() for s in ready), return_exceptions=True)

    def _refill(self) -> None:
        while not self._closed and len(self._ready) + self._refilling < self.size:
            self._refilling += 1
            self._spawn(self._prepare_one())

    async def _prepare_one(self) -> None:
        failed = False
        try:
            async with self._refill_slots:
                sandbox = await Sandbox.prepare(self.factory, self.launcher)
            if self._closed:
                await sandbox.destroy()
            else:
                self._ready.append(sandbox)
        except Exception as error:
            log.warning("could not prepare a sandbox: %s", error)
            failed = True
            await asyncio.sleep(1)  # do not spin while the database is down
        finally:
            self._refilling -= 1
        if failed:
            self._refill()

    async def _destroy(self, sandbox: Sandbox) -> None:
        try:
            await sandbox.destroy()
        except Exception as error:
            log.warning("could not destroy sandbox %s: %s", sandbox.id, error)

    def _spawn(self, coro: object) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)  # type: ignore[call-overload]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _spawn_destroy(self, sandbox: Sandbox) -> None:
        """Destroy in the background; close() waits for these instead of cancelling them half-way."""
        task = self._spawn(self._destroy(sandbox))
        self._destroying.add(task)
        task.add_done_callback(self._destroying.discard)
