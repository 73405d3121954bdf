"""A token bucket per client, so one visitor of a public site cannot take every sandbox."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from .tokenbucket import TokenBucket


class RateLimiter:
    """`per_minute` runs a minute per key, in bursts of up to `per_minute`."""

    MAX_KEYS = 10_000

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, key: str) -> float:
        """Spend a token for `key`: 0 when allowed, otherwise seconds until the next token (nothing spent)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.per_minute, self.per_minute / 60.0, self.clock)
        if bucket.take() is None:
            return bucket.wait_time()
        if len(self._buckets) > self.MAX_KEYS:
            self._forget_full_buckets()
        return 0.0

    def _forget_full_buckets(self) -> None:
        """A full bucket is what a new key gets anyway: forgetting it changes nothing but memory."""
        self._buckets = {key: bucket for key, bucket in self._buckets.items() if not bucket.is_full()}


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
