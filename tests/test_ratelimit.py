"""The per-client rate limit of public mode."""

from __future__ import annotations

from runner.ratelimit import RateLimiter, retry_after_header


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_up_to_the_limit_then_a_wait() -> None:
    clock = Clock()
    limiter = RateLimiter(3, clock)
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.take("a")
    assert 19 < wait <= 20  # one token every 20 s at 3 a minute
    assert limiter.take("b") == 0.0  # other clients are not affected
    clock.now += 20
    assert limiter.take("a") == 0.0


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert retry_after_header(0.2) == "1"
    assert retry_after_header(19.01) == "20"
