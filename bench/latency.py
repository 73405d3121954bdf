"""Sequential latency: one reader pressing Run again and again, as the page's widget does.

For the warm pool the benchmark waits (untimed) until the pool is full again
before each run, because a reader pauses between runs for far longer than a
refill takes; back-to-back load is the throughput benchmark's subject. The cold
path (pool size 0) prepares a sandbox inside every run, so it needs no pause.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from .runs import RunFigures, RunResult, post_run


@dataclass
class LatencySample(RunFigures):
    label: str
    results: list[RunResult] = field(default_factory=list)
    warmup_errors: int = 0
    refill_waits: list[float] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(1 for r in self.results if not r.ok) + self.warmup_errors


def sequential(
    client: httpx.Client,
    body: dict[str, str],
    *,
    label: str,
    count: int,
    warmup: int,
    before_each: Callable[[], float] | None = None,
) -> LatencySample:
    """`warmup` unrecorded runs, then `count` recorded ones, strictly one after another.

    `before_each` (untimed) returns how long it waited, e.g. for the pool to refill.
    """
    sample = LatencySample(label)
    for index in range(warmup + count):
        waited = before_each() if before_each is not None else 0.0
        result = post_run(client, body)
        if index < warmup:
            sample.warmup_errors += 0 if result.ok else 1
            continue
        sample.results.append(result)
        sample.refill_waits.append(waited)
    return sample
