"""The learning rate as a pure function of the samples seen (sections 4.2-4.3).

The paper states both schedules in data units: "decay rate of 0.94 every 2 epochs" (ImageNet) and
"decay rate of 0.9 every 3,000,000 samples" (JFT). Counting samples rather than steps keeps the
schedule the same at any batch size and number of processes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from xception.train.recipes import Recipe


@dataclass(frozen=True)
class LearningRateSchedule:
    """`lr(samples)`: a recipe's schedule, resolved against a data set size and a budget."""

    peak_lr: float  # after batch-size scaling
    schedule: str
    decay_factor: float
    decay_every_samples: float | None
    min_lr_ratio: float
    warmup_samples: float
    total_samples: float

    def __call__(self, samples: float) -> float:
        if samples < self.warmup_samples:
            # NOTE(paper): no warm-up in the paper; only recipes that ask for one get it.
            return self.peak_lr * samples / self.warmup_samples
        if self.schedule == "staircase":
            return self.peak_lr * self.decay_factor ** math.floor(samples / self.decay_every_samples)
        # cosine, from the end of the warm-up to the end of the budget
        span = max(self.total_samples - self.warmup_samples, 1.0)
        progress = min((samples - self.warmup_samples) / span, 1.0)
        floor = self.peak_lr * self.min_lr_ratio
        return floor + (self.peak_lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_schedule(
    recipe: Recipe, *, batch_size: int, epoch_size: int, total_samples: float
) -> LearningRateSchedule:
    """Resolve `recipe`'s schedule for a global `batch_size`, `epoch_size` training images and a
    budget of `total_samples` images."""
    peak = recipe.lr
    if recipe.reference_batch_size is not None:
        peak = recipe.lr * batch_size / recipe.reference_batch_size  # linear scaling rule
    every = None
    if recipe.schedule == "staircase":
        if (recipe.decay_every_epochs is None) == (recipe.decay_every_samples is None):
            raise ValueError(f"recipe {recipe.name!r}: a staircase schedule needs exactly one of "
                             "decay_every_epochs and decay_every_samples")
        every = (recipe.decay_every_samples if recipe.decay_every_samples is not None
                 else recipe.decay_every_epochs * epoch_size)
    elif recipe.schedule != "cosine":
        raise ValueError(f"recipe {recipe.name!r}: unknown schedule {recipe.schedule!r}; valid: staircase, cosine")
    return LearningRateSchedule(
        peak_lr=peak,
        schedule=recipe.schedule,
        decay_factor=recipe.decay_factor,
        decay_every_samples=every,
        min_lr_ratio=recipe.min_lr_ratio,
        warmup_samples=recipe.warmup_epochs * epoch_size,
        total_samples=total_samples,
    )
