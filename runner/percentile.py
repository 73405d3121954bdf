"""The one percentile of the project: the run's query latencies and the benchmark's figures alike.

Linear interpolation between closest ranks (NumPy's default, "type 7"): with the
small samples both deal in (a benchmark's 5-50 runs, a run's first few dozen
queries) it does not jump to the single worst value the way nearest-rank does,
and with large samples the two agree. The sandbox's child imports this module
(through `runner/queries.py`), so it imports nothing but `math`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], fraction: float) -> float:
    """The `fraction` (0 to 1) percentile of `values`, in any order; NaN when there are none."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"a percentile is asked as a fraction from 0 to 1, not {fraction}")
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
