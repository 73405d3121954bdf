"""Medians and ratios of small samples, the way the report quotes them.

Percentiles are the runner's own definition (`runner/percentile.py`), so a latency
figure means the same in the report as in a run's summary.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from runner.percentile import percentile


def median(values: Sequence[float]) -> float:
    """The middle value, the mean of the two middle ones for an even count; NaN for no values."""
    return percentile(values, 0.5)


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, NaN instead of a ZeroDivisionError when a phase measured nothing."""
    if denominator == 0 or math.isnan(denominator):
        return math.nan
    return numerator / denominator
