"""Mean and standard deviation over seeds, and the one rule for calling a difference real: the 95%
confidence interval of the difference of means excludes 0 (Welch's t, which does not assume the
two arms vary alike). Where it does not, the minimal detectable difference says how large a
difference this design (these seeds, this spread) would have found.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from scipy import optimize, stats

Verdict = Literal["real", "within noise", "one seed"]

CONFIDENCE = 0.95  # of the interval; the test's alpha is 1 - CONFIDENCE, two-sided
POWER = 0.80  # of the minimal detectable difference


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


@dataclass(frozen=True)
class Difference:
    """The difference of two means, a - b, as Welch's t-test sees it.

    low, high: its CONFIDENCE interval; p_value: two-sided, for "the means are equal"; df: the
    Welch-Satterthwaite degrees of freedom; detectable: the smallest true |a - b| that the same
    design (sizes and standard deviations) detects with probability POWER at alpha 1 - CONFIDENCE.
    """

    estimate: float
    low: float
    high: float
    p_value: float
    df: float
    detectable: float

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def format(self, scale: float = 1.0, digits: int = 2) -> str:
        """"+d [low, high]" with values x `scale` (100 for percentage points)."""
        return (f"{self.estimate * scale:+.{digits}f} [{self.low * scale:+.{digits}f}, "
                f"{self.high * scale:+.{digits}f}]")


def detectable_difference(standard_error: float, df: float) -> float:
    """The true difference at which a two-sided t-test with this standard error and df rejects
    with probability POWER: its statistic is then noncentral t (df, difference / standard error)."""
    critical = stats.t.ppf(0.5 + CONFIDENCE / 2, df)

    def power(difference: float) -> float:
        shift = difference / standard_error
        # P(T > critical) + P(T < -critical); the second as P(-T > critical), where -T is noncentral
        # t with -shift: scipy's cdf of the far lower tail can be NaN where this survival function is not.
        return stats.nct.sf(critical, df, shift) + stats.nct.sf(critical, df, -shift)

    upper = standard_error
    while power(upper) < POWER:
        upper *= 2
    return optimize.brentq(lambda d: power(d) - POWER, 0.0, upper, xtol=1e-12 * upper)


def compare(a: Summary, b: Summary) -> Difference:
    """Welch's comparison of two summaries of at least 2 values each."""
    if min(a.n, b.n) < 2:
        raise ValueError(f"a comparison needs at least 2 values per side, got {a.n} and {b.n}")
    var_a, var_b = a.std**2 / a.n, b.std**2 / b.n
    standard_error = math.sqrt(var_a + var_b)
    estimate = a.mean - b.mean
    if standard_error == 0:  # every seed gave the same value on both sides: nothing to test against
        return Difference(estimate, estimate, estimate, 0.0 if estimate else 1.0, a.n + b.n - 2, 0.0)
    df = (var_a + var_b) ** 2 / (var_a**2 / (a.n - 1) + var_b**2 / (b.n - 1))
    half_width = stats.t.ppf(0.5 + CONFIDENCE / 2, df) * standard_error
    p_value = 2 * stats.t.sf(abs(estimate) / standard_error, df)
    return Difference(estimate, estimate - half_width, estimate + half_width, float(p_value), df,
                      detectable_difference(standard_error, df))


def verdict(a: Summary, b: Summary) -> Verdict:
    """"real" when the confidence interval of a - b excludes 0, "within noise" when it holds 0,
    "one seed" when either side has a single value (no spread, so no verdict)."""
    if min(a.n, b.n) < 2:
        return "one seed"
    return "real" if compare(a, b).excludes_zero else "within noise"
