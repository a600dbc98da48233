"""One inference session: from a weight file to answers, in one object that every command uses.

Like onnxruntime's `InferenceSession` (one object owns the model, its providers and options) and
Hugging Face's `Pipeline` (preprocess, forward, postprocess), `InferenceSession.open` does once what
`predict`, `eval`, `serve` and `explain` each did on their own before, and had already let drift
apart (`serve` ignored the calibration that `predict` used):

1. load and check the weights (`xception.models.trained.open_weights`; a classifier without
   class names is refused here, in one message);
2. choose the runtime and precision (`xception.deploy.choice.choose_runtime`): named by the user, else
   the fastest that `xception bench --choose` measured on this machine for this model, at batch 1
   for `workload="latency"` (`predict`) or at the session's batch size for "throughput" (`eval`,
   `serve`; the nearest batch size measured where that one was not, never batch 1); else a preference;
3. build the engine (`xception.deploy.build.build_engine`; PyTorch where a default runtime cannot
   convert the model, said in a warning) and the transform of the weights' preparation;
4. turn logits into probabilities (softmax, or a sigmoid per class for multi-label weights), through
   the temperature of the weights' decision policy, and decide (`xception.tasks.decision`: the
   threshold of two-class and multi-label weights, with the reason in words).

The engine is built on first use, so that `explain`, which needs only the PyTorch module, the class
names and the transform, builds none.
"""

from __future__ import annotations

import functools
import io
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
from torch import nn

from xception.deploy.build import TorchPath, build_engine
from xception.deploy.calibration import DEFAULT_CALIBRATION_SIZE, calibration_images
from xception.deploy.choice import RuntimeChoice, choose_runtime
from xception.deploy.engines import Engine
from xception.deploy.timings import Timings, calibrate_runtimes, load_timings
from xception.home import xception_home
from xception.tasks.decision import Decided, calibrated_logits, decide
from xception.tasks.tta import TTA, averaged_logits, tta_views

if TYPE_CHECKING:
    from PIL import Image

    from xception.description import WeightsDescription
    from xception.models.weights.registry import WeightsEntry

log = logging.getLogger(__name__)

Workload = Literal["latency", "throughput"]


class InferenceSession:
    """A weight file ready to answer: `model` (PyTorch, eval mode, fp32, on `device`), its
    `description`, and, built on first use, the `engine` of the chosen runtime and precision."""

    def __init__(self, weights: str | os.PathLike | WeightsEntry, model: nn.Module, description: WeightsDescription, *,
                 device: torch.device, runtime: str | None = None, precision: str | None = None,
                 workload: Workload = "latency", batch_size: int = 1, threads: int | None = None,
                 data_path: str | None = None, torch_path: TorchPath = "aot") -> None:
        if workload not in ("latency", "throughput"):
            raise ValueError(f"workload must be 'latency' or 'throughput', got {workload!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.weights, self.model, self.description, self.device = weights, model, description, device
        self.runtime, self.precision = runtime, precision
        self.workload, self.batch_size, self.threads, self.data_path = workload, batch_size, threads, data_path
        self.torch_path = torch_path

    @classmethod
    def open(cls, weights: str | os.PathLike | WeightsEntry, *, model_name: str | None = None,
             runtime: str | None = None, precision: str | None = None, device: str | torch.device | None = None,
             workload: Workload = "latency", batch_size: int = 1, threads: int | None = None,
             data_path: str | None = None, require_class_names: bool = True,
             torch_path: TorchPath = "aot") -> InferenceSession:
        """Load `weights` (a file from training or `xception convert`, the official .h5, a foreign
        state dict, or published weights by name) for inference on `device` (default: a GPU when
        there is one). `runtime` / `precision`: as asked, else chosen for `workload` at
        `batch_size`. `require_class_names`: refuse a classifier whose file names no classes (a
        notop or foreign file); `eval`, which takes the names from its data, does not. `torch_path`:
        how the PyTorch runtime runs fp32 and bf16 on the CPU (`xception.deploy.build.TORCH_PATHS`:
        AOTInductor by default; "eager" for a reference, as `xception quantize` measures against)."""
        from xception.distributed import pick_device
        from xception.models.trained import open_weights

        torch_device = device if isinstance(device, torch.device) else pick_device(device)
        model, _, description = open_weights(weights, model_name=model_name)
        if require_class_names and description.task == "classification" and not description.class_names:
            raise ValueError(f"{weights} records no class names: a notop file (features, not classes) or a foreign "
                             "file whose head is not ImageNet's; fine-tune or convert it with this project")
        session = cls(weights, model, description, device=torch_device, runtime=runtime, precision=precision,
                      workload=workload, batch_size=batch_size, threads=threads, data_path=data_path,
                      torch_path=torch_path)
        if runtime is not None or precision is not None:
            session.requested_choice()  # a runtime or precision that cannot run here fails now, not at first use
        return session

    # What the weights are.
    @property
    def class_names(self) -> tuple[str, ...]:
        return self.description.class_names or ()

    @property
    def multilabel(self) -> bool:
        return self.description.multilabel

    @property
    def in_channels(self) -> int:
        return self.description.in_channels

    @property
    def image_size(self) -> int:
        return self.description.image_size

    @property
    def task(self) -> str:
        return self.description.task

    @functools.cached_property
    def transform(self) -> Callable[[Image.Image], torch.Tensor]:
        """PIL image -> model input (C, S, S) in [-1, 1], as the weights were evaluated."""
        from xception.data.prediction import prediction_transform

        return prediction_transform(self.description.preprocessing, in_channels=self.in_channels)

    def prepare(self, image: str | os.PathLike | bytes | Image.Image, *, name: str | None = None) -> torch.Tensor:
        """An image file, encoded bytes (any format PIL reads) or a PIL image -> the model input
        (C, S, S) in [-1, 1]; raises `UnreadableImageError` for what is not an image, truncated, or
        a decompression bomb."""
        from PIL import Image

        from xception.data.images import load_image

        if isinstance(image, Image.Image):
            return self.transform(image.convert("L" if self.in_channels == 1 else "RGB"))
        if isinstance(image, bytes):
            return self.transform(load_image(io.BytesIO(image), in_channels=self.in_channels,
                                             name=name or "the image's bytes"))
        return self.transform(load_image(image, in_channels=self.in_channels))

    # The runtime.
    def timings(self) -> Timings | None:
        """The calibration of this machine that decides the choice (None: none, or not on a CPU)."""
        if self.device.type != "cpu":
            return None
        if self.workload == "latency":  # one image's latency: no other batch size says anything of it
            return load_timings(self.model, image_size=self.image_size, batch_size=1, threads=self.threads)
        return load_timings(self.model, image_size=self.image_size, batch_size=self.batch_size, threads=self.threads,
                            nearest=True)

    def requested_choice(self) -> RuntimeChoice:
        """The runtime and precision this session asks for, before any fallback."""
        timings = self.timings() if self.runtime is None else None
        return choose_runtime(self.device, runtime=self.runtime, precision=self.precision,  # type: ignore[arg-type]
                              timings=timings, decide=self.workload)

    @functools.cached_property
    def _built(self) -> tuple[Engine, RuntimeChoice]:
        return self._build(self.requested_choice())

    @property
    def engine(self) -> Engine:
        """The engine of the chosen runtime and precision, built (and int8 quantized) on first use."""
        return self._built[0]

    @property
    def choice(self) -> RuntimeChoice:
        """The runtime and precision the engine runs, and why (after any fallback)."""
        return self._built[1]

    def runtime_text(self) -> str:
        """The engine's settings and the reason for the choice, in one line, e.g. "OpenVINO 2026.4.1
        (CPU, INFERENCE_PRECISION_HINT=bf16, 2 threads) (openvino bf16: the fastest measured ...)"."""
        return f"{self.engine.description} ({self.choice.reason})"

    def _build(self, choice: RuntimeChoice) -> tuple[Engine, RuntimeChoice]:
        calibration = None
        if choice.precision == "int8":
            calibration = calibration_images(self.description, count=DEFAULT_CALIBRATION_SIZE,
                                             data_path=self.data_path)
        try:
            # The ONNX export onnxruntime and OpenVINO run is cached on disk, keyed by the weights
            # (`export_for_runtimes`): a second process with the same weights never exports again.
            engine = build_engine(self.model, runtime=choice.runtime, precision=choice.precision,
                                  device=self.device, image_size=self.image_size, workdir=xception_home() / "exports",
                                  threads=self.threads, calibration=calibration, torch_path=self.torch_path)
            return engine, choice
        except RuntimeError as error:
            if choice.requested or choice.runtime == "torch":
                raise
            # A default the user did not ask for, whose converter rejects this model: said, then
            # PyTorch. (The one case seen, OpenVINO refusing an unpadded 3x3 pool over a 2x2 map
            # of a 16 px model, is fixed in SamePadMaxPool2d; tests/test_deploy.py runs it.)
            first_line = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
            log.warning("%s could not run this model (%s); using PyTorch", choice.runtime, first_line)
        fallback = RuntimeChoice("torch", choice.precision, f"{choice.runtime} {choice.precision} failed on this "
                                 f"model, so PyTorch; {choice.runtime} was chosen as {choice.reason}")
        return self._build(fallback)

    # Answers.
    @torch.no_grad()
    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C, S, S) inputs in [-1, 1] -> (N, num_classes) float32 logits (segmentation: (N, classes, S, S))."""
        return self.engine(images).float()

    def calibrated_logits(self, images: torch.Tensor, *, tta: TTA = "none") -> torch.Tensor:
        """`logits` divided by the temperature of the weights' decision policy (the logits themselves
        for weights without one): what the probabilities and the decision are computed from. `tta`
        other than "none": the logits of the mean calibrated probabilities of the images' views
        (`xception.tasks.tta`: their mirror images, five crops, or both)."""
        if tta == "none":
            return calibrated_logits(self.logits(images), self.description.decision)
        decision = self.description.decision
        return averaged_logits([self.logits(view) for view in tta_views(images, tta)],
                               multilabel=self.multilabel, temperature=decision.temperature if decision else 1.0)

    def probabilities(self, images: torch.Tensor, *, tta: TTA = "none") -> torch.Tensor:
        """(N, C, S, S) inputs in [-1, 1] -> (N, num_classes) float32 probabilities: softmax, or a
        sigmoid per class for multi-label weights, of the calibrated logits (averaged over the
        views of `tta`)."""
        return probabilities(self.calibrated_logits(images, tta=tta), multilabel=self.multilabel)

    def decide(self, probabilities: torch.Tensor) -> list[Decided] | None:
        """Each row's decision under the weights' decision policy (`xception.tasks.decision.decide`:
        the class, its probability and why), or None for weights without one (argmax, as before)."""
        decision = self.description.decision
        if decision is None or self.task != "classification":
            return None
        return decide(probabilities, decision, class_names=self.class_names, multilabel=self.multilabel)


def probabilities(logits: torch.Tensor, *, multilabel: bool) -> torch.Tensor:
    """Logits (N, num_classes) -> probabilities: a sigmoid per class (multi-label), else softmax."""
    return logits.sigmoid() if multilabel else logits.softmax(dim=1)


def calibrate_weights(weights: str, *, batch_sizes: tuple[int, ...], budget_s: float, threads: int | None = None,
                      progress: bool = True) -> list[tuple[Timings, Path]]:
    """Calibrate the runtimes for a weight file at each of `batch_sizes` (1: `predict`'s latency;
    `eval`'s and `serve`'s batch: their throughput), each for about `budget_s` seconds of timed
    rounds, cached where `InferenceSession.timings` finds them."""
    from xception.models.trained import open_weights

    if any(size < 1 for size in batch_sizes):
        raise ValueError(f"batch sizes must be >= 1, got {batch_sizes}")
    model, _, description = open_weights(weights)
    return [calibrate_runtimes(model, image_size=description.image_size, batch_size=size, threads=threads,
                               budget_s=budget_s, progress=progress) for size in batch_sizes]

