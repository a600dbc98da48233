"""What an experiment is, as data: the arms it compares, on which task, and what the paper found.

An experiment file (`residual.py`, `spectrum.py`, ...) is one `Comparison` (or, for Table 3, one
`SpeedTable`); the runner (`xception.experiments.comparison`) does the rest, the same way for all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from xception.errors import UnknownNameError

Task = Literal["fashion_mnist", "mosaic"]
Family = Literal["xception", "inception_v3"]


@dataclass(frozen=True)
class Arm:
    """One network of a comparison.

    family: which of the scale's base networks to start from (`Scale.xception` or `Scale.inception_v3`).
    overrides: model-config fields set on top of the base (e.g. ``{"residual": False}``).
    match_to: the label of another arm whose trainable-parameter count this arm's width (and, for
        Xception, middle-flow depth) is searched to match within `Comparison.tolerance`.
    fc_multiple: when set, fully-connected layers of `fc_multiple` x the trunk's output features
        each, as many as `fc_count` (the paper's JFT head: two layers of 4096 = 2 x 2048 units).
    """

    label: str
    family: Family
    overrides: dict[str, Any] = field(default_factory=dict)
    match_to: str | None = None
    fc_multiple: int | None = None
    fc_count: int = 2


@dataclass(frozen=True)
class Claim:
    """What the paper reports for a pair of arms: `better` ends with a higher score than `worse`
    (expect "higher"), or the two end alike (expect "similar")."""

    better: str
    worse: str
    paper: str  # the paper's words or numbers, with the figure or table
    expect: Literal["higher", "similar"] = "higher"


@dataclass(frozen=True)
class Comparison:
    """A controlled comparison: every arm trained with the same data, recipe, budget and seeds."""

    name: str
    paper_ref: str  # "Figure 9", "Table 2, Figures 7-8", ...
    question: str
    task: Task
    arms: tuple[Arm, ...]
    claims: tuple[Claim, ...]
    # Reasons, written before any result, why this small-scale version may disagree with the paper.
    caveats: str
    tolerance: float = 0.05  # parameter counts of matched arms agree within this fraction
    measure_speed: bool = False  # time the training step of every arm (steps/s), as the spectrum asks

    def arm(self, label: str) -> Arm:
        for arm in self.arms:
            if arm.label == label:
                return arm
        raise UnknownNameError(f"experiment {self.name!r} has no arm {label!r}; arms: {[a.label for a in self.arms]}")


@dataclass(frozen=True)
class SpeedTable:
    """Table 3: parameters and training speed of full-size networks on this machine."""

    name: str
    paper_ref: str
    question: str
    models: tuple[str, ...]  # registered model names, built at their paper configuration
    image_size: int
    num_classes: int
    # The paper's numbers, for the report: model -> (parameters, steps/s on 60 K80s).
    paper: dict[str, tuple[int, float]]
    caveats: str
