"""A per-client token bucket, so one visitor of a public site cannot take every sandbox."""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class RateLimiter:
    """`per_minute` runs a minute per key, in bursts of up to `per_minute`."""

    MAX_KEYS = 10_000

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.refill_per_second = per_minute / 60.0
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> float:
        """Spend a token for `key`: 0 when allowed, otherwise seconds until the next token."""
        now = self.clock()
        tokens, last = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.refill_per_second)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.refill_per_second
        self._buckets[key] = (tokens - 1, now)
        if len(self._buckets) > self.MAX_KEYS:
            self._forget_full_buckets(now)
        return 0.0

    def _forget_full_buckets(self, now: float) -> None:
        full_after = self.capacity / self.refill_per_second
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
