"""The models a benchmark compares: this project's registry, timm and torchvision.

A contender is named by a spec: a registered name of this project (``xception``,
``inception_v3``), ``timm:<name>`` (e.g. ``timm:legacy_xception``) or ``torchvision:<name>``
(e.g. ``torchvision:inception_v3``, built without its auxiliary tower, as the paper trains it),
or ``onnxruntime:<name>`` / ``openvino:<name>``: this project's model run from its ONNX export in
that runtime (`xception.deploy.engines`). timm, torchvision and the runtimes are imported only
when asked for. torchvision is a dependency of this package; timm is not: `pip install
'xception[bench]'` installs it, and `pip install 'xception[deploy]'` the runtimes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from xception.errors import UserError
from xception.models.complexity import count_macs

Source = Literal["xception", "timm", "torchvision", "onnxruntime", "openvino"]
SOURCES: tuple[Source, ...] = ("xception", "timm", "torchvision", "onnxruntime", "openvino")


@dataclass(frozen=True)
class Contender:
    spec: str
    source: Source
    name: str

    @property
    def is_ours(self) -> bool:
        """A model of this project's registry, in PyTorch or in a deployment runtime."""
        return self.source in ("xception", "onnxruntime", "openvino")

    @property
    def runtime(self) -> str:
        """"torch", "onnxruntime" or "openvino"."""
        return self.source if self.source in ("onnxruntime", "openvino") else "torch"


def parse_contender(spec: str) -> Contender:
    """``"timm:legacy_xception"`` -> Contender(source="timm", name="legacy_xception"), etc."""
    source, _, name = spec.rpartition(":")
    source = source or "xception"
    if source not in SOURCES or not name:
        raise ValueError(f"bad model spec {spec!r}; use NAME, timm:NAME, torchvision:NAME, onnxruntime:NAME or openvino:NAME")
    return Contender(spec, source, name)  # type: ignore[arg-type]


def check_installed(contender: Contender) -> None:
    """Fail with what to install when `contender`'s library is missing (timm is an optional extra)."""
    if contender.source != "timm":
        return
    try:
        import timm  # noqa: F401
    except ImportError:
        raise UserError(f"model {contender.spec!r} needs timm, which is not installed: pip install "
                         "'xception[bench]' (or leave timm models out of --models)") from None


def build_model(contender: Contender, *, num_classes: int) -> nn.Module:
    """A freshly initialised model on the CPU, in training mode."""
    if contender.is_ours:
        from xception.models import create_model

        return create_model(contender.name, num_classes=num_classes)
    if contender.source == "timm":
        import timm

        return timm.create_model(contender.name, pretrained=False, num_classes=num_classes)
    import torchvision

    builder = getattr(torchvision.models, contender.name)
    kwargs = dict(aux_logits=False, init_weights=False) if contender.name == "inception_v3" else {}
    return builder(weights=None, num_classes=num_classes, **kwargs)


def prepare_for_inference(model: nn.Module, contender: Contender, *, fuse: bool) -> nn.Module:
    """Eval mode; this project's models also get their BatchNorms folded when `fuse`."""
    if contender.is_ours and fuse:
        from xception.models.fuse import fuse_for_inference

        return fuse_for_inference(model)
    return model.eval()


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, images: torch.Tensor) -> nn.Module:
    """`model` in eval mode with every BatchNorm's running statistics set to those of `images`.

    A freshly initialised network's statistics (mean 0, variance 1) let the signal grow or fade
    over dozens of layers; set from real activations, every layer sees unit-scale input, as in a
    trained network, so that output errors (bf16, int8) and int8 calibration mean what they would.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average: one batch sets the statistics exactly
    model.train()(images)
    return model.eval()


def forward_gflop(model: nn.Module, image_size: int) -> float:
    """FLOPs of one image's forward pass in units of 1e9 (2 per multiply-accumulate)."""
    return 2 * count_macs(model, image_size) / 1e9
