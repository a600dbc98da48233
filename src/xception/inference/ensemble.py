"""An ensemble of weight files: the mean of their calibrated probabilities.

Like the DFDC winners' model ensembles: each member is an `InferenceSession` of its own (its runtime,
its preparation, its temperature), its probabilities go through its own temperature (and test-time
augmentation), and the ensemble's probabilities are their mean, or a weighted mean. The members must
name the same classes in the same order.

An ensemble given as several `--weights` decides by argmax (or 0.5 per class, multi-label): each
member's threshold was fitted for that member alone, and the mean of several is none of them. An
**ensemble file** (JSON, written by `xception calibrate --weights A --weights B --out E.json`, or by
hand) lists the members and their weights, and may carry the ensemble's own decision policy, fitted
on the mean probabilities as `calibrate` fits one model's (a temperature over the log of the mean,
a threshold on the result):

    {"format": "xception-ensemble/1",
     "members": [{"weights": "a.safetensors", "weight": 2}, {"weights": "hf-hub:org/b", "weight": 1}],
     "decision": {"temperature": 1.3, "threshold": 0.41, "rule": "eer", "split": "calibration",
                  "split_size": 80}}

Member paths are relative to the file's folder; names (`imagenet`, `hf-hub:...`) stay names. The
weights need not sum to 1 (they are normalised) and default to 1 each.

Members may prepare images differently (another size, crop or channel count): each then gets the
image as its own weights were evaluated. An ensemble answers as a session does: `prepare` gives one
tensor per image (the shared input where the members prepare alike, else their inputs flattened and
`pack`ed into one row) and `probabilities` takes a batch of them (`unpack`ing the rows), so
`predict`, `serve`'s micro-batcher, `eval`'s data loader (`PackedInputs` packs a data set's items)
and the video path hold one tensor per image whatever the members.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import Dataset

from xception.description import Decision
from xception.inference.session import InferenceSession, probabilities
from xception.tasks.decision import Decided, decide
from xception.tasks.tta import averaged_logits
from xception.tta_names import TTA

if TYPE_CHECKING:
    from PIL import Image

FORMAT = "xception-ensemble/1"


class EnsembleError(ValueError):
    """Members that cannot be averaged: other classes, another task, or too few; a bad ensemble file."""


def is_ensemble_file(weights: str | os.PathLike) -> bool:
    """Whether `weights` names an ensemble file (a .json file) rather than weights."""
    return str(weights).lower().endswith(".json")


@dataclass(frozen=True)
class EnsembleFile:
    """An ensemble file's content: the `members` (weight files or names) with their `weights`, and
    the ensemble's `decision` policy (None: argmax, or 0.5 per class)."""

    members: tuple[str, ...]
    weights: tuple[float, ...]
    decision: Decision | None = None

    @classmethod
    def read(cls, path: str | os.PathLike) -> EnsembleFile:
        path = Path(path)
        try:
            content = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"no such ensemble file: {path}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise EnsembleError(f"{path} is not an ensemble file (JSON): {error}") from None
        if not isinstance(content, dict) or content.get("format") != FORMAT or not content.get("members"):
            raise EnsembleError(f'{path} is not an ensemble file: it needs "format": "{FORMAT}" and a list '
                                '"members" of {"weights": FILE, "weight": W}')
        members, weights = [], []
        for index, member in enumerate(content["members"]):
            weight = member.get("weight", 1.0) if isinstance(member, dict) else None
            valid_weight = isinstance(weight, (int, float)) and not isinstance(weight, bool) and weight > 0
            if not isinstance(member, dict) or not isinstance(member.get("weights"), str) or not valid_weight:
                raise EnsembleError(f'{path}: member {index} must be {{"weights": FILE, "weight": W > 0}}, '
                                    f"got {json.dumps(member)}")
            members.append(_resolved(member["weights"], path.parent))
            weights.append(float(weight))
        try:
            decision = Decision(**content["decision"]) if content.get("decision") else None
        except (TypeError, ValueError) as error:
            raise EnsembleError(f"{path}: its decision is not a decision policy: {error}") from None
        return cls(tuple(members), tuple(weights), decision)

    def write(self, path: str | os.PathLike) -> Path:
        """Write the file; member paths relative to its folder where they are files."""
        path = Path(path)
        members = [{"weights": _relative(member, path.parent), "weight": weight}
                   for member, weight in zip(self.members, self.weights, strict=True)]
        content: dict[str, Any] = {"format": FORMAT, "members": members}
        if self.decision is not None:
            content["decision"] = dataclasses.asdict(self.decision)
        path.write_text(json.dumps(content, indent=2) + "\n")
        return path


def _resolved(member: str, folder: Path) -> str:
    """A member as written in a file in `folder`: a file relative to the folder, or a name as it is."""
    candidate = folder / member
    return str(candidate) if not Path(member).is_absolute() and candidate.exists() else member


def _relative(member: str, folder: Path) -> str:
    if not Path(member).exists():
        return member  # a name (imagenet, hf-hub:...)
    try:
        return os.path.relpath(Path(member).resolve(), folder.resolve())
    except ValueError:  # another drive
        return str(Path(member).resolve())


@dataclass(frozen=True)
class Ensemble:
    """`members`: the sessions, in the order given; their class names agree. `weights`: each
    member's share of the mean (summing to 1). `decision`: the ensemble's own policy, or None."""

    members: tuple[InferenceSession, ...]
    weights: tuple[float, ...] | None = None
    decision: Decision | None = None

    @classmethod
    def open(cls, weights: Sequence[str | os.PathLike], **options: Any) -> Ensemble:
        """Open each of `weights` with `InferenceSession.open(**options)` and check that they agree;
        `weights` may be one ensemble file, whose members, weights and decision it opens."""
        if not weights:
            raise EnsembleError("an ensemble needs at least one weight file")
        if len(weights) == 1 and is_ensemble_file(weights[0]):
            file = EnsembleFile.read(weights[0])
            return cls.of(tuple(InferenceSession.open(w, **options) for w in file.members), weights=file.weights,
                          decision=file.decision)
        if any(is_ensemble_file(w) for w in weights):
            raise EnsembleError("an ensemble file is given alone: list its members in it, not beside it")
        return cls.of(tuple(InferenceSession.open(w, **options) for w in weights))

    @classmethod
    def of(cls, members: Sequence[InferenceSession], *, weights: Sequence[float] | None = None,
           decision: Decision | None = None) -> Ensemble:
        if weights is not None:
            total = math.fsum(weights)
            weights = tuple(w / total for w in weights)
        first = members[0]
        for member in members[1:]:
            if member.task != "classification" or first.task != "classification":
                raise EnsembleError("an ensemble averages classifiers' probabilities; "
                                    f"{first.weights} or {member.weights} is a segmentation model")
            if member.class_names != first.class_names or member.multilabel != first.multilabel:
                raise EnsembleError(f"the members must name the same classes in the same order: {first.weights} has "
                                    f"{list(first.class_names)}, {member.weights} has {list(member.class_names)}")
        if decision is not None and first.task != "classification":
            raise EnsembleError(f"a decision policy is for classifiers; {first.weights} is a segmentation model")
        return cls(tuple(members), weights, decision)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.members[0].class_names

    @property
    def multilabel(self) -> bool:
        return self.members[0].multilabel

    @property
    def task(self) -> str:
        return "classification"

    @property
    def device(self) -> torch.device:
        return self.members[0].device

    def prepare_members(self, image: str | os.PathLike | bytes | Image.Image, *,
                        name: str | None = None) -> tuple[torch.Tensor, ...]:
        """The image prepared for each member, as its weights were evaluated (sizes may differ)."""
        return tuple(member.prepare(image, name=name) for member in self.members)

    def prepare(self, image: str | os.PathLike | bytes | Image.Image, *, name: str | None = None) -> torch.Tensor:
        """The image as one tensor for every member, as `InferenceSession.prepare` gives one model's:
        the shared input where the members prepare alike, else their inputs `pack`ed into one row."""
        if self.same_preparation():
            return self.members[0].prepare(image, name=name)
        return self.pack(self.prepare_members(image, name=name))

    def mean_logits(self, images: torch.Tensor, *, tta: TTA = "none") -> torch.Tensor:
        """Logits (N, C) whose softmax (sigmoids) is the (weighted) mean of the members' calibrated
        probabilities, before the ensemble's own temperature; `images`: a batch of `prepare`'s."""
        return averaged_logits([member.calibrated_logits(batch, tta=tta).float()
                                for member, batch in zip(self.members, self.member_inputs(images), strict=True)],
                               multilabel=self.multilabel, weights=self.weights)

    def calibrated_logits(self, images: torch.Tensor, *, tta: TTA = "none") -> torch.Tensor:
        """`mean_logits` through the ensemble's temperature (where its file carries a policy)."""
        logits = self.mean_logits(images, tta=tta)
        return logits / self.decision.temperature if self.decision is not None else logits

    def probabilities(self, images: torch.Tensor, *, tta: TTA = "none") -> torch.Tensor:
        """(N, num_classes) float32: the mean of the members' calibrated probabilities (through the
        ensemble's temperature) for a batch of `prepare`'s."""
        return probabilities(self.calibrated_logits(images, tta=tta), multilabel=self.multilabel)

    def decide(self, probabilities: torch.Tensor) -> list[Decided] | None:
        """Each row's decision under the ensemble's policy, or None without one (argmax)."""
        if self.decision is None:
            return None
        return decide(probabilities, self.decision, class_names=self.class_names, multilabel=self.multilabel)

    def describe(self) -> str:
        """e.g. "ensemble of 2 (weights 0.67, 0.33): the mean of the members' calibrated probabilities,
        decided at threshold 0.41 (EER on 80 calibration images)"."""
        shares = f" (weights {', '.join(f'{w:.2f}' for w in self.weights)})" if self.weights is not None else ""
        how = "decided by argmax"
        if self.decision is not None:
            how = ("decided by " if self.decision.threshold is None else "decided at ") + self.decision.reason()
        return f"ensemble of {len(self.members)}{shares}: the mean of the members' calibrated probabilities, {how}"

    def runtime_text(self) -> str:
        """`describe`, and each member's engine and why it was chosen."""
        return f"{self.describe()}; " + "; ".join(f"{m.weights}: {m.runtime_text()}" for m in self.members)

    def input_shapes(self) -> list[tuple[int, int, int]]:
        """Each member's input (C, S, S)."""
        return [(m.in_channels, m.image_size, m.image_size) for m in self.members]

    def pack(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """The members' inputs, each (N, C_i, S_i, S_i) (or one image, (C_i, S_i, S_i)), flattened and
        joined into (N, sum of C_i S_i S_i) (or one row)."""
        return torch.cat([x.flatten(start_dim=x.dim() - 3) for x in inputs], dim=-1)

    def unpack(self, packed: torch.Tensor) -> list[torch.Tensor]:
        """`pack`'s inverse: each member's (N, C_i, S_i, S_i) batch (views of `packed`)."""
        shapes = self.input_shapes()
        sizes = [c * h * w for c, h, w in shapes]
        if packed.shape[-1] != sum(sizes):
            raise ValueError(f"a packed row of {packed.shape[-1]} values for members of {sum(sizes)}")
        return [part.reshape(*packed.shape[:-1], *shape)
                for part, shape in zip(packed.split(sizes, dim=-1), shapes, strict=True)]

    def member_inputs(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The members' batches of a batch of `prepare`'s (or of a loader's `PackedInputs`): the same
        batch for members that prepare alike, else `unpack`ed rows."""
        return [images] * len(self.members) if self.same_preparation() else self.unpack(images)

    def same_preparation(self) -> bool:
        """Whether every member prepares an image alike (one data loader serves them all)."""
        first = self.members[0].description
        return all(m.description.preprocessing == first.preprocessing and m.in_channels == first.in_channels
                   for m in self.members[1:])


class PackedInputs(Dataset):
    """The items of `datasets` (one per member, each preparing the same files as that member's
    weights were evaluated) as (the members' inputs packed into one row, the target)."""

    def __init__(self, ensemble: Ensemble, datasets: Sequence[Dataset]) -> None:
        from xception.data.split_manifest import split_files

        if len(datasets) != len(ensemble.members):
            raise ValueError(f"{len(datasets)} data sets for {len(ensemble.members)} members")
        files = [split_files(d) for d in datasets]
        for member, listed in zip(ensemble.members[1:], files[1:], strict=True):
            if listed != files[0]:
                raise EnsembleError(f"the members' data splits hold other images ({ensemble.members[0].weights}: "
                                    f"{len(files[0])}, {member.weights}: {len(listed)}): evaluate the ensemble on "
                                    "one folder with --data DIR --split all")
        self.ensemble, self.datasets = ensemble, list(datasets)
        self.samples = [(path, None) for path in files[0]]  # the files, for `split_files` and bad-image records

    def __len__(self) -> int:
        return len(self.datasets[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Any]:
        items = [dataset[index] for dataset in self.datasets]
        return self.ensemble.pack([image for image, _ in items]), items[0][1]
