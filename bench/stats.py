"""Percentiles and medians of small samples, the way the report quotes them."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (NumPy's default); NaN for no values.

    Our samples are 5-50 long, so the method matters for p95: interpolation does
    not jump to the single worst run the way nearest-rank would on 20 values.
    """
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 0.5)


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, NaN instead of a ZeroDivisionError when a phase measured nothing."""
    if denominator == 0 or math.isnan(denominator):
        return math.nan
    return numerator / denominator
