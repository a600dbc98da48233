"""Training speed of a network: optimizer steps per second of `xception.train`'s own step
(forward, backward, optimizer, Polyak average), on random images, after a warm-up."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn

from xception.runtime import autocast_dtype, grad_scaler, synchronize
from xception.tasks.loss import ClassificationLoss
from xception.train.averaging import ModelAverage
from xception.train.optimizer import build_optimizer
from xception.train.recipes import get_recipe
from xception.train.schedule import build_schedule
from xception.train.step import Trainer


@dataclass(frozen=True)
class TrainingSpeed:
    """Median over the timed steps: steps per second and images per second at `batch_size`."""

    steps_per_s: float
    images_per_s: float
    batch_size: int
    image_size: int
    precision: str
    device: str
    timed_steps: int


def measure_training_speed(
    model: nn.Module,
    *,
    model_name: str,
    recipe: str,
    batch_size: int,
    image_size: int,
    in_channels: int,
    num_classes: int,
    device: torch.device,
    precision: str,
    warmup_steps: int,
    steps: int,
) -> TrainingSpeed:
    """Time `steps` training steps of `model` (after `warmup_steps` untimed ones) with `recipe`'s
    optimizer, loss and averaging, on one fixed batch of random images in [-1, 1]."""
    if steps < 1:
        raise ValueError(f"need at least one timed step, got {steps}")
    recipe_ = get_recipe(recipe)
    model = model.to(device).train()
    schedule = build_schedule(recipe_, batch_size=batch_size, epoch_size=batch_size * 1000,
                              total_samples=batch_size * (warmup_steps + steps))
    average = (ModelAverage(model, decay=recipe_.average_decay, bn_policy=recipe_.average_bn_policy)
               if recipe_.average_decay is not None else None)
    trainer = Trainer(
        model=model, module=model,
        optimizer=build_optimizer(model, recipe=recipe_, model_name=model_name, lr=schedule(0)),
        schedule=schedule, loss_fn=ClassificationLoss(recipe_.loss, label_smoothing=recipe_.label_smoothing),
        device=device, autocast_dtype=autocast_dtype(precision), channels_last=False, batch_size=batch_size,
        average=average, grad_clip_norm=recipe_.grad_clip_norm,
        scaler=grad_scaler(device.type, precision),
    )
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(batch_size, in_channels, image_size, image_size, generator=generator) * 2 - 1
    targets = torch.randint(0, num_classes, (batch_size,), generator=generator)
    batch = [(images.to(device), targets.to(device))]
    for _ in range(warmup_steps):
        trainer.train_step(batch)
    times = []
    for _ in range(steps):
        synchronize(device)
        start = time.perf_counter()
        trainer.train_step(batch)  # returns a Python float: the step has finished
        synchronize(device)
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    return TrainingSpeed(1.0 / seconds, batch_size / seconds, batch_size, image_size, precision, device.type, steps)
