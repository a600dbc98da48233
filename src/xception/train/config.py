"""`TrainConfig`, everything one training run needs, and `TrainResult`, what it gives back.

Defaults live here and in the recipes (`xception.train.recipes`), nowhere else. `None` means
"decide from the device" (precision, layout, compilation: `xception.runtime.fastest_settings`) or
"take the recipe's" (epochs). `resolve_train_values` applies the defaults that depend on the model:
its task's presets and its input size.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xception.config_fields import from_values
from xception.data.config import BAD_IMAGE_POLICIES, DEFAULT_BAD_IMAGES, MAX_BAD_FRACTION, BadImagePolicy
from xception.runtime import TrainingPrecision
from xception.tracker_names import DEFAULT_TRACKERS, TrackerName

if TYPE_CHECKING:
    from xception.data import DataConfig
    from xception.tasks import TaskName

# The model of `xception train --task segmentation`, and a segmentation model's recipe and data source
# unless told otherwise (the 10-minute CPU preset).
SEGMENTATION_DEFAULTS = {"model": "deeplabv3plus_small", "recipe": "mosaic_segmentation", "source": "mosaic_masks"}


@dataclass(frozen=True)
class TrainConfig:
    """One training run: a model, a data set, a recipe and a budget.

    `batch_size` is the global batch of one optimizer step, over all processes and accumulation
    micro-batches: each process computes `batch_size / (world_size * accumulation_steps)` images
    per forward pass, so a run means the same thing on 1 CPU and on 60 GPUs.
    """

    data: DataConfig
    model: str = "xception"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    # Start from these weights (xception.train.finetune): published weights by name ("imagenet"), the
    # official Keras .h5, a timm/Cadene .pth, this project's safetensors or a run's checkpoint.
    init_weights: str | None = None
    recipe: str = "paper_imagenet"
    recipe_overrides: dict[str, Any] = field(default_factory=dict)
    epochs: float | None = None  # None: the recipe's
    steps: int | None = None  # when set, the budget in optimizer steps (overrides epochs)
    # Stop this process after this many steps, checkpointed, as a preempted job would; the
    # schedule still spans the whole budget, and --resume continues (time-sliced clusters, tests).
    stop_after_steps: int | None = None
    batch_size: int = 128
    accumulation_steps: int = 1
    precision: TrainingPrecision | None = None  # None: fastest_settings(device)
    channels_last: bool | None = None
    compile: bool | None = None
    device: str | None = None  # None: "cuda" (this rank's GPU) when available, else "cpu"
    cpu_threads: int | None = None  # torch intra-op threads; None: leave torch's setting as it is
    sync_batchnorm: bool = False
    seed: int = 0
    num_workers: int | None = None  # None: min(8, CPUs per process - 1), at least 0
    out_dir: str = "runs/train"
    # A checkpoint file or a run directory to start from when out_dir has no checkpoint yet; a run
    # directory with one always continues from it (see xception.train.resume), unless `restart`.
    resume: str | None = None
    restart: bool = False  # start over: delete out_dir's checkpoints, metrics and weights first
    evals_per_epoch: int = 1
    evaluate_during_training: bool = True  # False: only at the end (a short run saves the time)
    checkpoint_every_steps: int | None = None  # besides the end of each evaluation
    log_every_steps: int = 20
    progress: bool = True
    # Where the run's record goes besides metrics.jsonl (xception.train.trackers); () for none.
    trackers: tuple[TrackerName, ...] = DEFAULT_TRACKERS
    bad_images: BadImagePolicy = DEFAULT_BAD_IMAGES  # "skip": leave unreadable images out (xception.data.bad_images)
    bad_image_fraction: float = MAX_BAD_FRACTION  # "skip" stops when more of a split than this is unreadable

    def check(self) -> None:
        """Fail with a message naming the option when this config cannot run here: unknown model,
        recipe or override, a missing path, fp16 or CUDA without a GPU, impossible sizes. Cheap:
        it builds nothing, so the command line calls it before any work."""
        import torch

        from xception.models.registry import resolve_config
        from xception.runtime import check_precision
        from xception.train.recipes import get_recipe

        resolve_config(self.model, **self.model_overrides)
        get_recipe(self.recipe, **self.recipe_overrides)
        cuda = (self.device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
        if cuda and not torch.cuda.is_available():
            raise ValueError(f"device {self.device!r} requested but CUDA is not available; use --device cpu")
        if self.precision is not None:
            check_precision(self.precision, "cuda" if cuda else "cpu")
        if self.batch_size < 1 or self.accumulation_steps < 1 or self.batch_size % self.accumulation_steps:
            raise ValueError(f"batch size {self.batch_size} must be a positive multiple of accumulation "
                             f"steps {self.accumulation_steps}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.epochs is not None and self.epochs <= 0:
            raise ValueError(f"epochs must be > 0, got {self.epochs}")
        if self.cpu_threads is not None and self.cpu_threads < 1:
            raise ValueError(f"cpu_threads must be >= 1, got {self.cpu_threads}")
        if self.bad_images not in BAD_IMAGE_POLICIES:
            raise ValueError(f"bad_images must be one of {', '.join(BAD_IMAGE_POLICIES)}, got {self.bad_images!r}")
        if not 0.0 <= self.bad_image_fraction <= 1.0:
            raise ValueError(f"bad_image_fraction must be in [0, 1], got {self.bad_image_fraction}")
        if self.evals_per_epoch < 1:
            raise ValueError(f"evals_per_epoch must be >= 1, got {self.evals_per_epoch}")
        if self.data.path is not None and not Path(self.data.path).exists():
            raise FileNotFoundError(f"data path {self.data.path} does not exist; pass the dataset's directory")
        if self.resume is not None and self.restart:
            raise ValueError("--resume and --restart contradict each other: give one of them")
        if self.init_weights is not None:
            from xception.models.weights.download import registered_weights
            from xception.train.finetune import file_model

            if not Path(self.init_weights).is_file() and registered_weights(file_model(self.model),
                                                                            self.init_weights) is None:
                from xception.models.weights.registry import list_weights

                raise FileNotFoundError(f"--weights {self.init_weights}: no such file and no published weights of "
                                        f"that name; give a weight file or one of {', '.join(list_weights())}")
        if self.resume is not None and not Path(self.resume).exists():
            raise FileNotFoundError(f"--resume {self.resume} does not exist; give a checkpoint file or a run directory")
        from xception.train.run_directory import RunDirectory
        from xception.train.trackers import check_trackers

        fresh = RunDirectory(Path(self.out_dir)).resume_source(resume=self.resume, restart=self.restart) is None
        check_trackers(self.trackers, fresh=fresh)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (str, int, float, bool, None, lists, dicts) for JSON and checkpoints."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """The inverse of `to_dict`; unknown keys fail with the valid ones listed."""
        from xception.data import DataConfig

        if "task" in values:  # written before the task came from the model's registry entry
            values = resolve_train_values(values)
        values = dict(values)
        if "tensorboard" in values:  # written before the trackers: TensorBoard on or off
            values.setdefault("trackers", DEFAULT_TRACKERS if values.pop("tensorboard") else ())
        if isinstance(values.get("data"), dict):
            values["data"] = from_values(DataConfig, values["data"], what="data", where="data.")
        return from_values(cls, values, what="training", names={"DataConfig": DataConfig})


def resolve_train_values(values: dict[str, Any], *, task: TaskName | None = None) -> dict[str, Any]:
    """Complete the fields of a TrainConfig given as plain data (a config file, the command line, an
    experiment), the one place where a task's presets apply: the model (`task` "segmentation" without
    a model: deeplabv3plus_small), then, for a segmentation model, the segmentation recipe and data
    source unless given, and the model's default input size. `task` must agree with the model. A
    "task" key (configs and checkpoints written before the task came from the model) must too, and
    is dropped. Returns a new dict."""
    from xception.models.registry import get_entry

    values = {**values, "data": dict(values.get("data") or {})}
    task = task or values.get("task")
    if task == "segmentation":
        values.setdefault("model", SEGMENTATION_DEFAULTS["model"])
    entry = get_entry(values.setdefault("model", TrainConfig.model))
    if task not in (None, entry.task):
        example = "deeplabv3plus_small" if task == "segmentation" else "xception"
        raise ValueError(f"task {task} needs a {task} model, e.g. --model {example}; {entry.name} is a "
                         f"{entry.task} model")
    values.pop("task", None)
    if entry.task == "segmentation":
        values.setdefault("recipe", SEGMENTATION_DEFAULTS["recipe"])
        values["data"].setdefault("source", SEGMENTATION_DEFAULTS["source"])
    values["data"].setdefault("image_size", entry.input_size)
    return values


@dataclass(frozen=True)
class EvalRecord:
    """One evaluation during training: when it happened and what it measured."""

    epoch: float  # fractional epochs of training done
    step: int  # optimizer steps done
    samples: int  # training images seen
    wall_s: float  # seconds of training so far, over every attempt (see TrainResult.attempts)
    train_loss: float  # mean training loss since the previous evaluation
    lr: float
    metrics: dict[str, float]  # top1/top5 (single-label) or map/map_at_100 (multi-label), loss


@dataclass(frozen=True)
class TrainResult:
    """What `fit` gives back. Paths are inside `run_dir`."""

    config: TrainConfig
    metrics: dict[str, float]  # the final evaluation (with the averaged weights when averaging is on)
    history: list[EvalRecord]
    run_dir: Path
    checkpoint: Path  # the latest full checkpoint
    best_checkpoint: Path | None
    weights: Path | None  # the evaluated (averaged, when on) final weights; None until finished
    steps: int  # optimizer steps done
    total_steps: int  # the budget
    finished: bool  # steps == total_steps (False: stopped, as stop_after_steps asks)
    wall_s: float  # seconds of training kept, summed over the attempts
    # Each attempt (the first run, then every resume): {"from_step", "to_step", "wall_s"}, the steps
    # it trained up to its last checkpoint and its seconds until then (or until the end).
    attempts: list[dict[str, Any]]
