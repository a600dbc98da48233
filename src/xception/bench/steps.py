"""One training or inference step of a model as a closure, ready to be timed.

The training step is the one `xception train` runs, `xception.train.step.Trainer` (autocast, the
loss in fp32, a GradScaler that is a no-op unless fp16), with the paper's SGD and momentum 0.9 (section 4.2)
and plain cross-entropy, the same for every contender; the inference
step is a forward pass without autograd. Inputs are random images in [-1, 1] and random labels,
created once on the device.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from xception.runtime import Precision, autocast, autocast_dtype, compile_model, grad_scaler
from xception.train.recipes import get_recipe
from xception.train.schedule import build_schedule
from xception.train.step import Trainer


def fixed_batch(batch_size: int, image_size: int, num_classes: int, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The benchmark's batch: (batch_size, 3, image_size, image_size) images uniform in [-1, 1] and
    (batch_size,) random labels, the same for every contender and call with the same `seed`."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(batch_size, 3, image_size, image_size, generator=generator) * 2 - 1
    return images, torch.randint(0, num_classes, (batch_size,), generator=generator)


def make_step(
    model: nn.Module,
    *,
    training: bool,
    batch_size: int,
    image_size: int,
    num_classes: int,
    precision: Precision,
    channels_last: bool,
    compile: bool,
    device: torch.device,
) -> Callable[[], torch.Tensor | None]:
    """A closure running one step of `model` (already on `device`) on `fixed_batch`; an inference
    step returns the logits.

    `compile` uses `xception.runtime.compile_model` (inductor; with freezing for inference).
    """
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=memory_format)
    images, labels = fixed_batch(batch_size, image_size, num_classes)
    images = images.to(device).contiguous(memory_format=memory_format)
    labels = labels.to(device)
    run = compile_model(model, training=training) if compile else model
    dtype = autocast_dtype(precision)

    if not training:

        @torch.inference_mode()
        def infer() -> torch.Tensor:
            with autocast(device.type, dtype):
                return run(images)

        return infer

    # Weight decay and Polyak averaging, which depend on our registry's model families, are left
    # out: every contender gets the same plain SGD step. A small learning rate, which does not
    # change the time, keeps repeated steps on random labels far from overflowing.
    recipe = get_recipe("paper_imagenet", lr=1e-3, reference_batch_size=None)
    schedule = build_schedule(recipe, batch_size=batch_size, epoch_size=1_000 * batch_size, total_samples=1e12)
    trainer = Trainer(
        model=run, module=model, optimizer=torch.optim.SGD(model.parameters(), lr=schedule(0), momentum=recipe.momentum),
        schedule=schedule, loss_fn=F.cross_entropy, device=device, autocast_dtype=dtype, channels_last=channels_last,
        batch_size=batch_size, average=None, grad_clip_norm=None,
        scaler=grad_scaler(device.type, precision),
    )
    batch = [(images, labels)]

    def train() -> None:
        trainer.train_step(batch)

    return train
