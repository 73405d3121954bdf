"""The one token bucket, as both of its users ration with it: waiting a little (the gate) or refusing (clients)."""

from __future__ import annotations

import pytest

from runner.tokenbucket import TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_tokens_at_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(3, 2.0, clock)
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() is None  # refused ...
    assert bucket.wait_time() == pytest.approx(0.5)  # ... and nothing spent: the next token is 0.5 s away
    clock.now += 0.5
    assert bucket.take() == 0.0
    clock.now += 100
    assert [bucket.take() for _ in range(4)] == [0.0, 0.0, 0.0, None]  # never more than the capacity


def test_a_token_taken_ahead_is_owed_by_the_next_caller() -> None:
    clock = Clock()
    bucket = TokenBucket(1, 1.0, clock)
    assert bucket.take(max_wait=5) == 0.0
    assert bucket.take(max_wait=5) == pytest.approx(1.0)  # granted, to be used in 1 s
    assert bucket.take(max_wait=5) == pytest.approx(2.0)  # the one after that waits for the next
    assert bucket.take(max_wait=1.5) is None  # 3 s away: refused, and not counted
    assert bucket.wait_time() == pytest.approx(3.0)


def test_full_means_as_good_as_new() -> None:
    clock = Clock()
    bucket = TokenBucket(2, 1.0, clock)
    assert bucket.is_full()
    bucket.take()
    assert not bucket.is_full()
    clock.now += 1
    assert bucket.is_full()


@pytest.mark.parametrize(("capacity", "rate"), [(0, 1.0), (1, 0.0), (1, -1.0)])
def test_a_bucket_that_could_never_grant_is_refused(capacity: float, rate: float) -> None:
    with pytest.raises(ValueError, match="token bucket"):
        TokenBucket(capacity, rate)
