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
) -> Callable[[], None]:
    """A closure running one step of `model` (already on `device`) on a fixed random batch.

    `compile` uses `xception.runtime.compile_model` (inductor; with freezing for inference).
    """
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=memory_format)
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(batch_size, 3, image_size, image_size, generator=generator) * 2 - 1
    images = images.to(device).contiguous(memory_format=memory_format)
    labels = torch.randint(0, num_classes, (batch_size,), generator=generator).to(device)
    run = compile_model(model, training=training) if compile else model

    if not training:

        @torch.inference_mode()
        def infer() -> None:
            with autocast(device, precision):
                run(images)

        return infer

    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def train() -> None:
        with autocast(device, precision):
            loss = F.cross_entropy(run(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return train
