"""The one percentile definition: linear interpolation between closest ranks (NumPy's default)."""

from __future__ import annotations

import math

import pytest

from runner.percentile import percentile


def test_interpolates_between_the_closest_ranks() -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], 0.5) == 2.5  # any order; the mean of the middle two
    assert percentile([1.0, 2.0, 3.0], 0.5) == 2.0
    twenty = [float(i) for i in range(1, 21)]
    assert percentile(twenty, 0.95) == pytest.approx(19.05)  # not the worst run (20), as nearest-rank gives
    assert percentile(twenty, 0.0) == 1.0 and percentile(twenty, 1.0) == 20.0
    assert percentile([7.0], 0.95) == 7.0


def test_nothing_measured_is_not_a_number() -> None:
    assert math.isnan(percentile([], 0.5))


@pytest.mark.parametrize("fraction", [-0.1, 1.5, 95])
def test_a_fraction_outside_0_to_1_is_refused(fraction: float) -> None:
    with pytest.raises(ValueError, match="fraction"):
        percentile([1.0, 2.0], fraction)
