"""The names of the test-time augmentations (`xception.tasks.tta`), for the command line's choices:
torch-free, so that `xception --help` stays quick."""

from __future__ import annotations

from typing import Literal, get_args

TTA = Literal["none", "flip"]  # none: the image alone; flip: it and its horizontal mirror, probabilities averaged
TTA_CHOICES: tuple[TTA, ...] = get_args(TTA)
