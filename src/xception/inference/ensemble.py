"""An ensemble of weight files: the mean of their calibrated probabilities.

Like the DFDC winners' model ensembles: each member is an `InferenceSession` of its own (its runtime,
its preparation, its temperature), its probabilities go through its own temperature (and test-time
augmentation), and the ensemble's probabilities are their mean. The members must name the same
classes in the same order. An ensemble decides by argmax (or 0.5 per class, multi-label): each
member's threshold was fitted for that member alone, and the mean of several is none of them;
`xception calibrate` fits weights, not ensembles.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from xception.inference.session import InferenceSession, probabilities
from xception.tasks.tta import averaged_logits
from xception.tta_names import TTA


class EnsembleError(ValueError):
    """Members that cannot be averaged: other classes, another task, or too few."""


@dataclass(frozen=True)
class Ensemble:
    """`members`: the sessions, in the order given; their class names agree."""

    members: tuple[InferenceSession, ...]

    @classmethod
    def open(cls, weights: Sequence[str | os.PathLike], **options: Any) -> Ensemble:
        """Open each of `weights` with `InferenceSession.open(**options)` and check that they agree."""
        if not weights:
            raise EnsembleError("an ensemble needs at least one weight file")
        return cls.of(tuple(InferenceSession.open(w, **options) for w in weights))

    @classmethod
    def of(cls, members: Sequence[InferenceSession]) -> Ensemble:
        first = members[0]
        for member in members[1:]:
            if member.task != "classification" or first.task != "classification":
                raise EnsembleError("an ensemble averages classifiers' probabilities; "
                                    f"{first.weights} or {member.weights} is a segmentation model")
            if member.class_names != first.class_names or member.multilabel != first.multilabel:
                raise EnsembleError(f"the members must name the same classes in the same order: {first.weights} has "
                                    f"{list(first.class_names)}, {member.weights} has {list(member.class_names)}")
        return cls(tuple(members))

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.members[0].class_names

    @property
    def multilabel(self) -> bool:
        return self.members[0].multilabel

    def prepare(self, image: str | os.PathLike | bytes, *, name: str | None = None) -> tuple[torch.Tensor, ...]:
        """The image prepared for each member, as its weights were evaluated (sizes may differ)."""
        return tuple(member.prepare(image, name=name) for member in self.members)

    def calibrated_logits(self, inputs: Sequence[torch.Tensor], *, tta: TTA = "none") -> torch.Tensor:
        """Logits (N, C) whose softmax (sigmoids) is the mean of the members' calibrated probabilities;
        `inputs[i]`: the (N, C, S_i, S_i) batch prepared for member i."""
        if len(inputs) != len(self.members):
            raise ValueError(f"{len(inputs)} input batches for {len(self.members)} members")
        return averaged_logits([member.calibrated_logits(batch, tta=tta).float()
                                for member, batch in zip(self.members, inputs, strict=True)],
                               multilabel=self.multilabel)

    def probabilities(self, inputs: Sequence[torch.Tensor], *, tta: TTA = "none") -> torch.Tensor:
        """(N, num_classes) float32: the mean of the members' calibrated probabilities."""
        return probabilities(self.calibrated_logits(inputs, tta=tta), multilabel=self.multilabel)

    def same_preparation(self) -> bool:
        """Whether every member prepares an image alike (one data loader serves them all)."""
        first = self.members[0].description
        return all(m.description.preprocessing == first.preprocessing and m.in_channels == first.in_channels
                   for m in self.members[1:])
