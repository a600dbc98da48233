"""The names of the test-time augmentations (`xception.tasks.tta`), for the command line's choices:
torch-free, so that `xception --help` stays quick."""

from __future__ import annotations

from typing import Literal, get_args

# none: the image alone; flip: it and its horizontal mirror; 5crop: its four corner crops and its centre
# crop (each about 7/8 of the side, resized back); flip+5crop: those five and their mirrors (ten views,
# AlexNet's and torchvision's TenCrop). The views' probabilities are averaged.
TTA = Literal["none", "flip", "5crop", "flip+5crop"]
TTA_CHOICES: tuple[TTA, ...] = get_args(TTA)
TTA_HELP = ("test-time augmentation, the views' probabilities averaged: flip (the image and its mirror, 2x the "
            "compute), 5crop (four corner crops and the centre crop, each 7/8 of the side resized back, 5x), "
            "flip+5crop (those and their mirrors, 10x)")
