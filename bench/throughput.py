"""Throughput: several readers pressing Run at once, for a fixed time.

Each client is its own keep-alive connection sending the next request as soon as
the previous answer arrives (a closed loop), so the runner, not the client, sets
the pace. A 429 is honoured (the client sleeps for Retry-After) and counted apart
from errors. Requests stop being started at the deadline; those in flight finish
and count, and the rate is completed runs over the time until the last answer.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import httpx

from .runs import RunFigures, RunResult, post_run_async

DRAIN_SECONDS = 60.0
"""Bound on waiting for the requests still in flight at the deadline."""


@dataclass
class ThroughputSample(RunFigures):
    clients: int
    window: float
    elapsed: float = 0.0
    results: list[RunResult] = field(default_factory=list)

    @property
    def completed(self) -> int:
        return sum(1 for r in self.results if r.ok)

    @property
    def busy(self) -> int:
        return sum(1 for r in self.results if r.busy)

    @property
    def errors(self) -> int:
        return sum(1 for r in self.results if r.error)

    @property
    def runs_per_second(self) -> float:
        return self.completed / self.elapsed if self.elapsed > 0 else 0.0


async def _client_loop(url: str, body: dict[str, str], deadline: float, sample: ThroughputSample) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60.0) as client:
        while time.perf_counter() < deadline:
            result = await post_run_async(client, body)
            sample.results.append(result)
            if result.busy:
                await asyncio.sleep(min(result.retry_after or 1.0, max(0.0, deadline - time.perf_counter())))
            elif result.http_status == 0:
                await asyncio.sleep(0.1)  # the connection failed: do not spin on it


async def _sustain(url: str, body: dict[str, str], clients: int, seconds: float) -> ThroughputSample:
    sample = ThroughputSample(clients, seconds)
    began = time.perf_counter()
    deadline = began + seconds
    loops = [asyncio.create_task(_client_loop(url, body, deadline, sample)) for _ in range(clients)]
    done, pending = await asyncio.wait(loops, timeout=seconds + DRAIN_SECONDS)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in done:
        if task.exception() is not None:
            sample.results.append(RunResult(0.0, 0, detail=f"client crashed: {task.exception()!r}"))
    sample.elapsed = time.perf_counter() - began
    return sample


def sustain(url: str, body: dict[str, str], *, clients: int, seconds: float) -> ThroughputSample:
    """`clients` closed-loop clients sending `body` for `seconds`."""
    return asyncio.run(_sustain(url, body, clients, seconds))
