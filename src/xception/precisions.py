"""The project's precisions by name: one type for inference and one for training. Imports nothing
heavy, because the command line's parser takes its --precision choices from here."""

from __future__ import annotations

from typing import Literal, get_args

# int8 is post-training quantization, for inference only (`xception.deploy`); the others are what
# `torch.autocast` computes in (fp32: autocast off).
Precision = Literal["fp32", "bf16", "fp16", "int8"]
PRECISIONS: tuple[Precision, ...] = get_args(Precision)
# The precisions a model trains in: all but int8.
TrainingPrecision = Literal["fp32", "bf16", "fp16"]
TRAINING_PRECISIONS: tuple[TrainingPrecision, ...] = get_args(TrainingPrecision)
