"""Mean ± standard deviation over repeats (seeds, random draws), as the papers' tables report them."""

from __future__ import annotations

import math
from collections.abc import Sequence


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n − 1 in the denominator; NaN for a single value)."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("mean ± std needs at least one value")
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, math.nan
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def plus_minus(values: Sequence[float], scale: float = 100.0, digits: int = 1) -> str:
    """``'12.3 ± 0.4'`` (values × ``scale``, e.g. percent); just the mean for a single value."""
    mean, std = mean_std(values)
    if math.isnan(std):
        return f"{mean * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"
