"""Sandboxes prepared ahead of time, each used once.

With a size of 0 every run prepares its own sandbox (the cold path). Otherwise the
pool keeps at least `size` ready, more when recent demand was higher: the most
runs that wanted a sandbox at once (running or waiting) in the last `DEMAND_WINDOW`
seconds, or the sandboxes taken while one is prepared (the recent rate of takes
times a preparation's recent duration, and half again), up to `max_size`. A reader
running sample after sample keeps the pool small; a room pressing Run at once grows
it for the next burst. The pool refills in the background after each run, with at
most `refill_concurrency` preparations at once.

A run that finds the pool empty waits for the next sandbox ready, first come first
served; while runs wait, up to `prepare_concurrency` sandboxes are prepared at once
(as many as cores: more would only slow each other down).

The pool owns its background work: every refill and every destruction is a task
it tracks, and `close` waits for all of them, so nothing outlives the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from .errors import SandboxFailed
from .sandbox import Sandbox, SandboxEnv

log = logging.getLogger("runner.pool")

RELEASE_DELAY = 0.05
"""Seconds a run's clean-up and the refill it triggers wait at most for its answer to go out (2 cores: the
answer first). A refill that starts at once after the answer has the time until the reader's next run."""
RETRY_DELAY = 1.0
"""Seconds before a failed preparation is retried (do not spin while the database is down)."""
DEMAND_WINDOW = 60.0
"""Seconds of recent demand the pool sizes itself by: a workshop's burst keeps it large for the next one."""
RATE_WINDOW = 5.0
"""Seconds over which the rate of takes is counted."""
RATE_MARGIN = 1.5
"""Ready sandboxes kept per one taken, on average, while another is prepared."""


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
        self,
        env: SandboxEnv,
        size: int = 0,
        refill_concurrency: int = 1,
        prepare_concurrency: int = 2,
        max_size: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.env = env
        self.size = size
        self.max_size = size if max_size is None else max(size, max_size)
        """The most the pool grows to on demand (a pool of 0 stays the cold path)."""
        self.clock = clock
        self._ready: list[Sandbox] = []
        self._preparing = 0
        self._refill_concurrency = max(1, refill_concurrency)
        self._prepare_concurrency = max(1, prepare_concurrency)
        """Preparations at once while runs wait: a burst is prepared a few at a time, first come first served,
        instead of every interpreter start slowing every other down on a few cores."""
        self._waiters: deque[asyncio.Future[Sandbox]] = deque()
        self._demand: deque[tuple[float, int]] = deque()
        """(when, how many runs wanted a sandbox at once then), one entry per take, oldest first."""
        self._prepare_seconds = 0.1
        """A preparation's recent duration (wall clock)."""
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

    def target(self) -> int:
        """Sandboxes to keep ready: the configured size, or recent demand when that was higher."""
        horizon = self.clock() - DEMAND_WINDOW
        while self._demand and self._demand[0][0] < horizon:
            self._demand.popleft()
        now = self.clock()
        peak = max((wanted for _, wanted in self._demand), default=0)
        rate = sum(1 for when, _ in self._demand if when >= now - RATE_WINDOW) / RATE_WINDOW
        during_preparation = math.ceil(rate * self._prepare_seconds * RATE_MARGIN)
        return max(self.size, min(self.max_size, max(peak, during_preparation)))

    def state(self) -> PoolState:
        return PoolState(
            self.target(),
            len(self._ready),
            self.busy,
            self._preparing,
            frozenset(s.database.name for s in self._ready),
        )

    async def take(self) -> Sandbox:
        """A ready sandbox if there is one, otherwise the next one prepared (first come, first served).

        A caller that goes away while it waits leaves the line; a sandbox handed to it
        meanwhile goes to the next caller or back to the pool.
        """
        self._demand.append((self.clock(), self.busy + len(self._waiters) + 1))
        if self._ready:
            sandbox = self._ready.pop(0)  # the refill waits for release(): it would compete with this run
        else:
            waiter: asyncio.Future[Sandbox] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            self._refill()
            try:
                sandbox = await waiter
            except BaseException:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                elif waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    self._hand_over(waiter.result())
                raise
        self.busy += 1
        return sandbox

    def release(self, sandbox: Sandbox, after: asyncio.Event | None = None) -> None:
        """Destroy a used sandbox and refill once the run's answer has gone out (`after`), or RELEASE_DELAY later."""
        self.busy -= 1
        self._leaving.add(sandbox)
        self._spawn(self._release(sandbox, after))

    async def _release(self, sandbox: Sandbox, after: asyncio.Event | None) -> None:
        try:
            if not self._closed:
                # the answer first; a client slow to take it delays the clean-up by RELEASE_DELAY at most
                if after is None:
                    await asyncio.sleep(RELEASE_DELAY)
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(after.wait(), RELEASE_DELAY)
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
        waiters, self._waiters = self._waiters, deque()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(SandboxFailed("the runner is stopping"))
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
        """Start preparations up to the target plus the waiting runs, a few at a time."""
        limit = self._prepare_concurrency if self._waiters else self._refill_concurrency
        wanted = self.target() + len(self._waiters)
        while not self._closed and len(self._ready) + self._preparing < wanted and self._preparing < limit:
            self._preparing += 1
            self._spawn(self._prepare_one())

    async def _prepare_one(self) -> None:
        began = self.clock()
        try:
            sandbox = await Sandbox.prepare(self.env)
        except Exception as error:
            self.failures += 1
            log.warning("could not prepare a sandbox: %s", error)
            self._preparing -= 1
            waiters, self._waiters = self._waiters, deque()
            for waiter in waiters:  # the runs waiting get the failure now (a 503), not after every retry
                if not waiter.done():
                    waiter.set_exception(error)
            await asyncio.sleep(RETRY_DELAY)
            self._refill()
            return
        except BaseException:
            self._preparing -= 1
            raise
        self._preparing -= 1
        self.failures = 0
        self._prepare_seconds = 0.8 * self._prepare_seconds + 0.2 * (self.clock() - began)
        if self._closed:
            await sandbox.destroy()
            return
        self._hand_over(sandbox)
        self._refill()

    def _hand_over(self, sandbox: Sandbox) -> None:
        """To the run that has waited longest, or into the pool."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(sandbox)
                return
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
