"""Trained weights as the server runs them: the engine `xception predict` would build, the data
preparation the weights were evaluated with, and the class names, so that an answer of the server is
the answer of `xception predict` with the same runtime and precision."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
from PIL import Image
from torch import nn

from xception.data.images import load_image
from xception.deploy.engines import Engine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedModel:
    """What the server needs of a weight file. `model` is the PyTorch module itself (eval mode), kept
    for what needs gradients or activations, such as class activation maps; `engine` computes the
    answers."""

    name: str  # the model's name in the protocol's URLs
    model_name: str  # its registry model, e.g. "xception"
    model: nn.Module
    engine: Engine
    transform: Callable[[Image.Image], torch.Tensor]  # PIL image -> (C, H, W) in [-1, 1]
    class_names: tuple[str, ...]
    in_channels: int
    image_size: int
    multilabel: bool

    def prepare(self, data: bytes) -> torch.Tensor:
        """An encoded image (any format PIL reads) -> the model input (C, H, W) in [-1, 1]; raises
        `UnreadableImageError` for what is not an image, truncated, or a decompression bomb."""
        return self.transform(load_image(io.BytesIO(data), in_channels=self.in_channels, name="the request's image"))

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) inputs in [-1, 1] -> (N, num_classes) float32 probabilities: softmax, or a
        sigmoid per class for multi-label weights, as `xception.tasks.predict.predict` computes them."""
        logits = self.engine(images).float()
        return logits.sigmoid() if self.multilabel else logits.softmax(dim=1)


def load_served_model(weights: str, *, model_name: str | None = None, name: str | None = None,
                      runtime: str | None = None, precision: str | None = None,
                      device: str | None = None) -> ServedModel:
    """The weights in `weights` (a file from training or `xception convert`, the official .h5, or a
    published name) in the runtime and precision `xception predict` would choose with the same
    options. `name` (default: the registry model's name) is the model's name in the protocol."""
    from xception.data.prediction import prediction_transform
    from xception.deploy.choice import choose_runtime
    from xception.deploy.trained import trained_engine
    from xception.distributed import pick_device
    from xception.models.trained import load_trained_model

    torch_device = pick_device(device)
    model, description = load_trained_model(weights, model_name=model_name)
    if not description.class_names:
        raise ValueError(f"{weights} records no class names: a notop file (features, not classes) or a "
                         "foreign file whose head is not ImageNet's; fine-tune or convert it with this project")
    if description.task != "classification":
        raise ValueError(f"{weights} holds a {description.task} model; the server serves classifiers")
    choice = choose_runtime(torch_device, runtime=runtime, precision=precision)
    engine, choice = trained_engine(model, description, choice, device=torch_device)
    log.info("runtime: %s (%s)", engine.description, choice.reason)
    return ServedModel(name=name or description.model_name, model_name=description.model_name, model=model,
                       engine=engine,
                       transform=prediction_transform(description.preprocessing, in_channels=description.in_channels),
                       class_names=description.class_names, in_channels=description.in_channels,
                       image_size=description.image_size, multilabel=description.multilabel)
