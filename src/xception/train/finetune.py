"""Fine-tuning: start from published or one's own weights, train the head first, then the whole network.

`initialize` loads a weight file (a registry name, the official Keras .h5, a timm/Cadene .pth, this
project's safetensors, or a training run's checkpoint) into a freshly built model: the body exactly,
the head too when the file's classes are the data's (same count and, where the file names them, the
same names), else the head stays freshly initialised. A segmentation model whose file holds a
classifier gets it in its backbone, as DeepLab starts from ImageNet weights.

`Phases` is the schedule of the recipe's fine-tuning fields as a pure function of the samples seen
(so a resumed run is in the same phase as an uninterrupted one): the trunk frozen and in inference
mode for `head_epochs`, then trainable at `trunk_lr_scale` of the learning rate after a linear ramp;
with `batchnorm="frozen"` every BatchNorm layer stays in inference mode with its scale and offset
fixed (Keras' rule for fine-tuning).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from xception.file_digest import file_sha256
from xception.models.registry import get_entry
from xception.models.trained import is_our_file, open_weights
from xception.models.weights.assign import SourceTensor, assign_state, is_head_key
from xception.models.weights.download import weights_file
from xception.train.checkpoint import FORMAT, NotACheckpointError, evaluated_weights, load_checkpoint
from xception.train.recipes import Recipe

_BATCHNORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.SyncBatchNorm)


@dataclass(frozen=True)
class Initialization:
    """What `initialize` did: recorded in config.json and the weights' provenance ("init")."""

    weights: str  # as given (a name or a path)
    file: str  # the file read
    sha256: str
    into: str  # "model" or "backbone"
    loaded: int  # tensors loaded
    fresh: tuple[str, ...]  # state-dict keys left as initialised (a new head)
    reason: str  # why the head is fresh, or "" when it loaded


def initialize(module: nn.Module, weights: str | os.PathLike, *, class_names: list[str]) -> Initialization:
    """Load `weights` into `module` (built for the data's `class_names`) in place, as the module
    docstring says. ValueError naming the first tensor when the file is for another architecture."""
    model_name = module.model_name
    path = Path(weights_file(file_model(model_name), weights))
    state, file_classes, file_model_name = _read(path, weights, model_name)
    target, into = module, "model"
    if get_entry(model_name).task == "segmentation" and get_entry(file_model_name).task == "classification":
        target, into = module.backbone.model, "backbone"
    expected = file_model(model_name) if into == "backbone" else model_name
    if file_model_name != expected:
        raise ValueError(f"{path} holds {file_model_name!r}; {model_name!r} starts from weights of {expected!r}")
    reason = _fresh_head_reason(file_classes, class_names, into=into)
    if reason:
        state = {key: value for key, value in state.items() if not is_head_key(key)}
    assign_state(target, state, origin=str(path))
    loaded = set(state)
    prefix = "backbone.model." if into == "backbone" else ""
    fresh = tuple(prefix + key for key in target.state_dict() if key not in loaded)
    if into == "backbone":
        fresh = tuple(key for key in module.state_dict() if not key.startswith("backbone.")) + fresh
    return Initialization(weights=str(weights), file=str(path), sha256=file_sha256(path), into=into,
                          loaded=len(loaded), fresh=fresh, reason=reason)


def file_model(model_name: str) -> str:
    """The model whose published weights a model starts from (a segmentation model: its backbone's)."""
    entry = get_entry(model_name)
    return entry.config.backbone if entry.task == "segmentation" else model_name


def _read(path: Path, weights: str | os.PathLike, model_name: str) -> tuple[dict[str, SourceTensor], list | None, str]:
    """(the tensors, the class names or None when the file has no head, the model they are for).
    A training checkpoint gives the weights its run evaluated; any weight file is opened as every
    reader opens one (`open_weights`: published names, foreign formats, our files)."""
    try:
        checkpoint = load_checkpoint(path) if path.suffix == ".pt" else None
    except NotACheckpointError:
        checkpoint = None
    if isinstance(checkpoint, dict) and checkpoint.get("format") == FORMAT:
        # The weights the run evaluated (its Polyak average when it averages), as its weight files hold.
        tensors = {key: SourceTensor(value, key) for key, value in evaluated_weights(checkpoint).items()}
        return tensors, list(checkpoint["class_names"]), checkpoint["config"]["model"]
    ours = is_our_file(path)
    model, spec, description = open_weights(path if ours else weights, model_name=None if ours else file_model(model_name))
    tensors = {key: SourceTensor(value, key) for key, value in model.state_dict().items()}
    if not spec.num_classes:
        return tensors, None, spec.name
    names = description.class_names  # classes without names: as many as the logistic layer's rows
    return tensors, list(names) if names is not None else [None] * spec.num_classes, spec.name


def _fresh_head_reason(file_classes: list | None, class_names: list[str], *, into: str) -> str:
    if into == "backbone":
        return "a classifier's weights in a segmentation model's backbone"
    if not file_classes:
        return "the file has no head"
    if len(file_classes) != len(class_names):
        return f"the file has {len(file_classes)} classes, the data {len(class_names)}"
    if None not in file_classes and list(file_classes) != list(class_names):
        return "the file's classes are not the data's"
    return ""




def head_parameters(module: nn.Module) -> set[nn.Parameter]:
    """The head: a classifier's fully-connected layers and logistic layer, or everything of a
    segmentation model outside its backbone (ASPP, decoder, classifier)."""
    if get_entry(module.model_name).task == "segmentation":
        return {p for name, p in module.named_parameters() if not name.startswith("backbone.")}
    return {p for name, p in module.named_parameters() if is_head_key(name)}


class Phases:
    """The fine-tuning schedule of `recipe` over `module` (see the module docstring)."""

    def __init__(self, module: nn.Module, recipe: Recipe, *, epoch_size: int) -> None:
        head = head_parameters(module)
        self.trunk_modules = [m for m in module.modules()
                              if any(True for _ in m.parameters(recurse=False)) and
                              not any(p in head for p in m.parameters(recurse=False))]
        self.batchnorms = [m for m in module.modules() if isinstance(m, _BATCHNORM)]
        frozen_bn = {p for m in self.batchnorms for p in m.parameters()} if recipe.batchnorm == "frozen" else set()
        for p in frozen_bn:
            p.requires_grad_(False)
        self.trunk = {p for p in module.parameters() if p not in head and p not in frozen_bn}
        self.frozen_batchnorm = recipe.batchnorm == "frozen"
        self.head_samples = recipe.head_epochs * epoch_size
        self.warmup_samples = recipe.trunk_warmup_epochs * epoch_size
        self.trunk_lr_scale = recipe.trunk_lr_scale

    @property
    def active(self) -> bool:
        return self.head_samples > 0 or self.frozen_batchnorm or self.trunk_lr_scale != 1.0

    def trunk_trains(self, samples: float) -> bool:
        return samples >= self.head_samples

    def lr_scale(self, samples: float) -> float:
        """The trunk's learning rate as a fraction of the head's after `samples` images."""
        if not self.trunk_trains(samples):
            return 0.0
        if self.warmup_samples <= 0:
            return self.trunk_lr_scale
        return self.trunk_lr_scale * min(1.0, (samples - self.head_samples + 1) / self.warmup_samples)

    def apply(self, samples: float) -> None:
        """Before a training step (after `model.train()`): the trunk trainable or not, and in
        inference mode where the phase or the BatchNorm rule says."""
        trains = self.trunk_trains(samples)
        for p in self.trunk:
            p.requires_grad_(trains)
        if not trains:
            for m in self.trunk_modules:
                m.eval()
        if self.frozen_batchnorm:
            for m in self.batchnorms:
                m.eval()
