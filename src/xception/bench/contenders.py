"""The models a benchmark compares: this project's registry, timm and torchvision.

A contender is named by a spec: a registered name of this project (``xception``,
``inception_v3``), ``timm:<name>`` (e.g. ``timm:legacy_xception``) or ``torchvision:<name>``
(e.g. ``torchvision:inception_v3``, built without its auxiliary tower, as the paper trains it).
timm and torchvision are imported only when asked for. torchvision is a dependency of this
package; timm is not: `pip install 'xception[bench]'` installs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn

from xception.errors import UserError
from xception.models.complexity import count_macs

Source = Literal["xception", "timm", "torchvision"]


@dataclass(frozen=True)
class Contender:
    spec: str
    source: Source
    name: str

    @property
    def is_ours(self) -> bool:
        return self.source == "xception"


def parse_contender(spec: str) -> Contender:
    """``"timm:legacy_xception"`` -> Contender(source="timm", name="legacy_xception"), etc."""
    source, _, name = spec.rpartition(":")
    source = source or "xception"
    if source not in ("xception", "timm", "torchvision") or not name:
        raise ValueError(f"bad model spec {spec!r}; use NAME, timm:NAME or torchvision:NAME")
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
    if contender.source == "xception":
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


def forward_gflop(model: nn.Module, image_size: int) -> float:
    """FLOPs of one image's forward pass in units of 1e9 (2 per multiply-accumulate)."""
    return 2 * count_macs(model, image_size) / 1e9
