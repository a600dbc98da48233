"""Trained weights as the server runs them: an `InferenceSession` (the engine, the preparation and the
class names), so that an answer of the server is the answer of `xception predict` with the same
runtime and precision. The server decides its runtime by throughput at its largest batch, as `eval`
does, where `predict` decides by latency at batch 1."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from xception.deploy.engines import Engine
from xception.inference.ensemble import Ensemble, is_ensemble_file
from xception.inference.session import InferenceSession
from xception.tasks.decision import Decided
from xception.tta_names import TTA

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedModel:
    """What the server needs of a weight file: its name in the protocol's URLs and its session. The
    PyTorch module (`model`, eval mode) is kept for what needs gradients or activations, such as
    class activation maps; `engine` computes the answers."""

    name: str
    session: InferenceSession
    tta: TTA = "none"  # test-time augmentation of every answer (`xception.tasks.tta`)
    # Several weight files: their mean calibrated probabilities (`session` is the first member's).
    # Members that prepare images alike share one input; else each image's row packs every member's
    # own (`Ensemble.pack`), so that the micro-batcher still stacks one tensor per image.
    ensemble: Ensemble | None = None

    def input_shapes_text(self) -> str:
        """Each member's input, e.g. "3x299x299, 1x32x32"."""
        shapes = self.ensemble.input_shapes() if self.ensemble is not None else [(self.in_channels, self.image_size,
                                                                                   self.image_size)]
        return ", ".join("x".join(map(str, shape)) for shape in shapes)

    @property
    def one_preparation(self) -> bool:
        """Whether one (C, S, S) input serves every member (`in_channels`, `image_size` describe it)."""
        return self.ensemble is None or self.ensemble.same_preparation()

    @property
    def model_name(self) -> str:  # its registry model, e.g. "xception"
        return self.session.description.model_name

    @property
    def model(self) -> nn.Module:
        return self.session.model

    @property
    def engine(self) -> Engine:
        return self.session.engine

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.session.class_names

    @property
    def in_channels(self) -> int:
        return self.session.in_channels

    @property
    def image_size(self) -> int:
        return self.session.image_size

    @property
    def multilabel(self) -> bool:
        return self.session.multilabel

    def prepare(self, data: bytes) -> torch.Tensor:
        """An encoded image (any format PIL reads) -> the model input (C, H, W) in [-1, 1] (or, for an
        ensemble whose members prepare images differently, their inputs packed into one row); raises
        `UnreadableImageError` for what is not an image, truncated, or a decompression bomb."""
        return (self.ensemble or self.session).prepare(data, name="the request's image")

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) inputs in [-1, 1] -> (N, num_classes) float32 probabilities, as
        `InferenceSession.probabilities` (and so `xception predict`) computes them."""
        return (self.ensemble or self.session).probabilities(images, tta=self.tta)

    @property
    def decides(self) -> bool:
        """Whether the answers carry a decision under a policy: the weights', or an ensemble file's
        (an ensemble without one decides by argmax, as `predict` says)."""
        if self.ensemble is not None:
            return self.ensemble.decision is not None
        return self.session.description.decision is not None and self.session.task == "classification"

    def decide(self, probabilities: torch.Tensor) -> list[Decided] | None:
        """Each row's decision under that policy, or None without one (`InferenceSession.decide`,
        `Ensemble.decide`)."""
        return self.session.decide(probabilities) if self.ensemble is None else self.ensemble.decide(probabilities)


def load_served_model(weights: str | Sequence[str], *, model_name: str | None = None, name: str | None = None,
                      runtime: str | None = None, precision: str | None = None,
                      device: str | None = None, max_batch_size: int = 16, tta: TTA = "none") -> ServedModel:
    """The weights in `weights` (a file from training or `xception convert`, the official .h5, or a
    published name) in the runtime and precision chosen for throughput at `max_batch_size` (the
    batcher's largest batch), or as asked. `name` (default: the registry model's name) is the
    model's name in the protocol. Several `weights`, or an ensemble file: an ensemble (the mean of
    their calibrated probabilities, each member preparing the image as its weights were evaluated). `tta` (`xception.tasks.tta`) answers with
    the mean probabilities of each image's views."""
    options = dict(model_name=model_name, runtime=runtime, precision=precision, device=device, workload="throughput",
                   batch_size=max_batch_size)
    members = [weights] if isinstance(weights, str) else list(weights)
    ensemble = None
    if len(members) > 1 or is_ensemble_file(members[0]):
        ensemble = Ensemble.open(members, **options)
        session = ensemble.members[0]
    else:
        session = InferenceSession.open(members[0], **options)
    if session.task != "classification":
        raise ValueError(f"{weights} holds a {session.task} model; the server serves classifiers")
    log.info("runtime: %s", session.runtime_text())
    if ensemble is not None:
        log.info("%s", ensemble.describe())
    return ServedModel(name=name or session.description.model_name, session=session, tta=tta, ensemble=ensemble)
