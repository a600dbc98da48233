"""Equal parameter counts: find the width (and middle-flow depth) at which a network has as many
trainable parameters as another, as the paper compares Xception and Inception V3 (section 4.5.2:
"a more efficient use of model parameters")."""

from __future__ import annotations

import bisect
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from xception.models import create_model
from xception.models.complexity import count_parameters

# Widths tried: fine enough that the rounding of channels to multiples of 8 is the limit.
WIDTHS: tuple[float, ...] = tuple(round(0.03 + 0.0025 * i, 4) for i in range(int((1.0 - 0.03) / 0.0025) + 1))


@dataclass(frozen=True)
class WidthMatch:
    """The width and depth found, and how close the count came to the target."""

    width: float
    depth: int | None  # Xception middle-flow repeats; None where depth was not searched
    parameters: int
    target: int

    @property
    def relative_error(self) -> float:
        return abs(self.parameters - self.target) / self.target


@functools.lru_cache(maxsize=4096)
def _count(model: str, overrides: tuple[tuple[str, Any], ...], num_classes: int, in_channels: int) -> int:
    return count_parameters(create_model(model, num_classes=num_classes, in_channels=in_channels, **dict(overrides)))


def count_model_parameters(model: str, overrides: dict[str, Any], *, num_classes: int, in_channels: int) -> int:
    """Trainable parameters of the registered `model` with `overrides` (cached; overrides must be hashable)."""
    return _count(model, tuple(sorted(overrides.items())), num_classes, in_channels)


def match_width(
    *,
    target: int,
    count: Callable[[float, int | None], int],
    depths: Sequence[int | None] = (None,),
    widths: Sequence[float] = WIDTHS,
    tolerance: float = 0.05,
) -> WidthMatch:
    """The width whose `count(width, depth)` is closest to `target`, for the first depth in `depths`
    (in order of preference) at which some width comes within `tolerance`.

    `count` must grow with width apart from the rounding of channels, so a bisection finds the
    crossing and the widths around it are compared. Raises ValueError with the closest count
    found when no depth comes within tolerance.
    """
    if target <= 0:
        raise ValueError(f"target parameter count must be positive, got {target}")
    best: WidthMatch | None = None
    for depth in depths:
        counts: dict[int, int] = {}

        def at(i: int, depth: int | None = depth, counts: dict[int, int] = counts) -> int:
            if i not in counts:
                counts[i] = count(widths[i], depth)
            return counts[i]

        # The first index whose count reaches the target (len(widths) when none does).
        crossing = bisect.bisect_left(range(len(widths)), True, key=lambda i: at(i) >= target)
        candidates = range(max(0, crossing - 4), min(len(widths), crossing + 4))
        i = min(candidates, key=lambda i: abs(at(i) - target))
        found = WidthMatch(width=widths[i], depth=depth, parameters=at(i), target=target)
        if found.relative_error <= tolerance:
            return found
        if best is None or found.relative_error < best.relative_error:
            best = found
    assert best is not None
    raise ValueError(f"no width matches {target:,} parameters within {tolerance:.0%}: the closest is "
                     f"{best.parameters:,} at width {best.width}, depth {best.depth}")
