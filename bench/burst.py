"""The workshop burst: a room presses Run within a second or two, each attendee once.

Unlike the closed-loop throughput clients, the burst is open-loop: request `i` of
`count` leaves at `i * window / count` seconds whatever the answers so far, each on
a connection of its own (one attendee, one browser). A 429 is a refusal the
attendee sees: it is counted, never retried. Runs are streamed as the widget asks
for them, so a run waiting in line is told its place (`queued` events). The paced section is one reader
pressing Run again every `interval` seconds (or as soon as the answer arrives when
that takes longer), the pool having no untimed pause to refill in.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import httpx

from .runs import RunFigures, RunResult, post_run, stream_run_async

LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=0)


@dataclass
class BurstSample(RunFigures):
    count: int
    window: float
    results: list[RunResult] = field(default_factory=list)
    last_answer: float = float("nan")
    """Seconds from the first click to the last answer."""

    @property
    def completed(self) -> int:
        return sum(1 for r in self.results if r.ok)

    @property
    def refused(self) -> int:
        return sum(1 for r in self.results if r.busy)

    @property
    def errors(self) -> int:
        return sum(1 for r in self.results if r.error)

    @property
    def queued(self) -> int:
        """Runs that waited in line and were told their place."""
        return sum(1 for r in self.results if r.places)

    @property
    def deepest(self) -> int:
        return max((max(r.places) for r in self.results if r.places), default=0)


async def _burst(url: str, body: dict[str, str], count: int, window: float) -> BurstSample:
    sample = BurstSample(count, window)
    async with httpx.AsyncClient(base_url=url, timeout=60.0, limits=LIMITS) as client:
        began = time.perf_counter()

        async def attendee(index: int) -> RunResult:
            await asyncio.sleep(max(0.0, began + index * window / count - time.perf_counter()))
            return await stream_run_async(client, body)

        sample.results = list(await asyncio.gather(*(attendee(i) for i in range(count))))
        sample.last_answer = time.perf_counter() - began
    return sample


def burst(url: str, body: dict[str, str], *, count: int, window: float) -> BurstSample:
    """`count` runs of `body` started evenly over `window` seconds, open-loop."""
    return asyncio.run(_burst(url, body, count, window))


@dataclass
class PacedSample(RunFigures):
    interval: float
    results: list[RunResult] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(1 for r in self.results if not r.ok)


def paced(client: httpx.Client, body: dict[str, str], *, count: int, interval: float) -> PacedSample:
    """One reader: a run every `interval` seconds, the next one at once if an answer took longer."""
    sample = PacedSample(interval)
    next_at = time.perf_counter()
    for _ in range(count):
        time.sleep(max(0.0, next_at - time.perf_counter()))  # pacing the reader, not waiting for the runner
        next_at = time.perf_counter() + interval
        sample.results.append(post_run(client, body))
    return sample
