"""Mean and standard deviation over seeds, and the one rule for calling a difference real:
the mean +- std intervals of the two arms do not overlap."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Verdict = Literal["real", "within noise", "one seed"]


@dataclass(frozen=True)
class Summary:
    """mean and sample standard deviation (ddof 1; 0 for a single value) of `n` values."""

    mean: float
    std: float
    n: int

    @property
    def low(self) -> float:
        return self.mean - self.std

    @property
    def high(self) -> float:
        return self.mean + self.std

    def format(self, scale: float = 1.0, digits: int = 2) -> str:
        """"mean +- std" with values x `scale` (100 for percentages)."""
        return f"{self.mean * scale:.{digits}f} ± {self.std * scale:.{digits}f}"


def summarize(values: Sequence[float]) -> Summary:
    """Summary of `values` (at least one; NaN values are an error, not silently dropped)."""
    if not values:
        raise ValueError("cannot summarize no values")
    if any(math.isnan(v) for v in values):
        raise ValueError(f"NaN among values {list(values)}")
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return Summary(mean, std, n)


def intervals_separate(a: Summary, b: Summary) -> bool:
    """True when [mean - std, mean + std] of `a` and of `b` do not overlap."""
    return a.high < b.low or b.high < a.low


def verdict(a: Summary, b: Summary) -> Verdict:
    """"real" when the intervals separate, "within noise" when they overlap, "one seed" when either
    side has a single value (no spread, so no verdict)."""
    if min(a.n, b.n) < 2:
        return "one seed"
    return "real" if intervals_separate(a, b) else "within noise"
