"""A token bucket: bursts up to a capacity, then a steady rate.

Two parts of the runner ration with it: the gate hands a sandbox its PostgreSQL
connections (`runner/gate.py`, which may make a caller wait a little for the next
token) and public mode limits each client's runs (`runner/ratelimit.py`, which
never waits: it refuses and says when to come back). The sandbox's child imports
the gate, so this module imports nothing but `time`.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """`capacity` tokens at most, refilled at `per_second`; a token is spent whole, when it is taken."""

    __slots__ = ("capacity", "clock", "last", "per_second", "tokens")

    def __init__(self, capacity: float, per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        if capacity < 1 or per_second <= 0:
            raise ValueError(f"a token bucket needs a capacity >= 1 and a rate > 0, not {capacity} and {per_second}")
        self.capacity = float(capacity)
        self.per_second = per_second
        self.clock = clock
        self.tokens = self.capacity
        self.last = clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.per_second)
        self.last = now

    def wait_time(self) -> float:
        """Seconds until a whole token is there (0 when one is), without taking it."""
        self._refill()
        return max(0.0, (1 - self.tokens) / self.per_second)

    def take(self, max_wait: float = 0.0) -> float | None:
        """Spend a token that is there within `max_wait` seconds; None (nothing spent) when it is not.

        The answer is how long the caller must wait before using its token (0: now). A token
        taken ahead of time is owed: the bucket goes below zero, and later callers wait longer.
        """
        wait = self.wait_time()
        if wait > max_wait:
            return None
        self.tokens -= 1
        return wait

    def is_full(self) -> bool:
        """Whether the bucket has refilled completely (a full bucket is the same as a new one)."""
        self._refill()
        return self.tokens >= self.capacity
