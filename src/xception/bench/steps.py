"""One training or inference step of a model as a closure, ready to be timed.

The training step is a real one: forward under autocast, cross-entropy, backward and an SGD
update with momentum 0.9 (section 4.2); the inference step is a forward pass without autograd.
Inputs are random images in [-1, 1] and random labels, created once on the device.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from xception.bench.device import autocast
from xception.runtime import Precision, compile_model


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

    if not training:

        @torch.inference_mode()
        def infer() -> torch.Tensor:
            with autocast(device, precision):
                return run(images)

        return infer

    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def train() -> None:
        with autocast(device, precision):
            loss = F.cross_entropy(run(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return train
