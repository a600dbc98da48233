"""Run a `Comparison`: every arm x every seed through `xception.train.fit` on the same data,
recipe and budget, then the final weights scored on test images and on training images."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Subset

from xception.data import DataConfig, Datasets, build_datasets
from xception.data.loader import build_loader
from xception.experiments.arms import ResolvedArm, resolve_arms
from xception.experiments.definition import Comparison
from xception.experiments.records import RunRecord, load_record
from xception.experiments.scales import Scale
from xception.experiments.speed import TrainingSpeed, measure_training_speed
from xception.models import create_model
from xception.models.complexity import count_macs
from xception.tasks.classification import evaluate
from xception.tracker_names import TrackerName
from xception.train import TrainConfig, fit
from xception.train.checkpoint import evaluated_weights, load_checkpoint
from xception.train.run_directory import CONFIG

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class ComparisonData:
    """The data every arm sees: the data config, its datasets (the config's subsets of
    `train_examples` / `val_examples` images) and an unaugmented view of the first test-sized part
    of the same training subset, for the final training-set score."""

    config: DataConfig
    datasets: Datasets
    train_eval: torch.utils.data.Dataset | None

    @property
    def headline(self) -> str:
        """The metric the paper reports for this task: top-1 (ImageNet) or weighted MAP@100 (JFT)."""
        return "map_at_100" if self.datasets.multilabel else "top1"


def data_config(comparison: Comparison, scale: Scale, *, data_path: str | None) -> DataConfig:
    """The scale's single-label source (Fashion-MNIST; ImageNet-style folders at ImageNet scale) or
    multi-label source (mosaics; a multi-label manifest at ImageNet scale), cut to the scale's
    fixed subsets (the same for every arm and seed)."""
    subset = {"train_examples": scale.train_examples, "val_examples": scale.val_examples}
    if comparison.task == "fashion_mnist":
        return DataConfig(source=scale.single_label_source, path=data_path, image_size=scale.image_size,
                          in_channels=scale.in_channels, **subset)
    size = scale.mosaic_image_size if scale.multi_label_source == "mosaic" else scale.image_size
    return DataConfig(source=scale.multi_label_source, path=data_path, image_size=size, in_channels=scale.in_channels,
                      mosaic_grid=scale.mosaic_grid, mosaic_train_size=scale.mosaic_train_size,
                      mosaic_val_size=scale.mosaic_val_size, **subset)


def build_comparison_data(comparison: Comparison, scale: Scale, *, data_path: str | None = None) -> ComparisonData:
    """The datasets of `data_config`, and with `scale.score_training_images` the training-set view."""
    config = data_config(comparison, scale, data_path=data_path)
    datasets = build_datasets(config)
    train_eval = None
    if scale.score_training_images:
        unaugmented = build_datasets(dataclasses.replace(config, augment=False)).train
        train_eval = Subset(unaugmented, list(range(min(len(unaugmented), len(datasets.val)))))
    return ComparisonData(config, datasets, train_eval)


def train_config(comparison: Comparison, scale: Scale, arm: ResolvedArm, *, seed: int, run_dir: Path,
                 device: str | None, data_path: str | None = None) -> TrainConfig:
    """The one training configuration of `arm` with `seed`: only the model differs between arms."""
    multilabel = comparison.task == "mosaic"
    return TrainConfig(
        data=data_config(comparison, scale, data_path=data_path),
        model=arm.model,
        model_overrides=dict(arm.overrides),
        recipe=scale.multilabel_recipe if multilabel else scale.recipe,
        recipe_overrides=dict(scale.multilabel_recipe_overrides if multilabel else scale.recipe_overrides),
        epochs=scale.epochs,
        batch_size=scale.batch_size,
        precision=scale.precision,
        channels_last=False,
        compile=False,
        device=device,
        seed=seed,
        num_workers=0,  # the data are in memory and prepared a batch at a time
        out_dir=str(run_dir),
        evals_per_epoch=scale.evals_per_epoch,
        log_every_steps=10,
        progress=False,
        trackers=(),  # what a run is tracked by is not part of it: run_arm adds the experiment's
    )


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(values, default=str))


def _final_weights(arm: ResolvedArm, checkpoint: Path, *, num_classes: int, in_channels: int) -> torch.nn.Module:
    """The model whose test score `fit` reported last: the Polyak average when there is one."""
    model = create_model(arm.model, num_classes=num_classes, in_channels=in_channels, **arm.overrides)
    model.load_state_dict(evaluated_weights(load_checkpoint(checkpoint)))
    return model


def _is_main_process() -> bool:
    return not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0


def run_identity(config: TrainConfig, scale: Scale) -> dict[str, Any]:
    """Everything that shapes a run's record: its training configuration (the data subsets
    included) but for its directory and seed, and whether training images are scored after it."""
    identity = _plain(config.to_dict())
    del identity["out_dir"], identity["seed"]
    return {**identity, "score_training_images": scale.score_training_images}


def run_config(comparison: Comparison, scale: Scale, arm: ResolvedArm, *, seed: int, runs_dir: Path,
               device: str | None, data_path: str | None = None) -> TrainConfig:
    """The training configuration of `arm` with `seed`, its out_dir the run's directory
    `runs_dir/<model>-<key>/seed<k>`: the key a hash of `run_identity` (data and its subsets, model
    and overrides, recipe, budget, device, what is scored), so that experiments sharing an arm
    (every experiment's Xception baseline, say) train it once, and any other change trains anew."""
    config = train_config(comparison, scale, arm, seed=seed, run_dir=Path("-"), device=device, data_path=data_path)
    key = hashlib.sha256(json.dumps(run_identity(config, scale), sort_keys=True).encode()).hexdigest()[:12]
    return dataclasses.replace(config, out_dir=str(runs_dir / f"{arm.model}-{key}" / f"seed{seed}"))


def _finished_record(config: TrainConfig, scale: Scale, arm: ResolvedArm) -> RunRecord | None:
    """The record in `config.out_dir` if a run of exactly `config`, scored as `scale` asks, finished there."""
    earlier = load_record(Path(config.out_dir))
    if (earlier is None or earlier.train_config != _plain(config.to_dict())
            or earlier.score_training_images != scale.score_training_images):
        return None
    return dataclasses.replace(earlier, arm=arm.label)  # another experiment may call this arm otherwise


def previous_record(comparison: Comparison, scale: Scale, arm: ResolvedArm, *, seed: int, runs_dir: Path,
                    device: str | None, data_path: str | None = None) -> RunRecord | None:
    """The record of an earlier run of exactly this configuration, if there is one."""
    config = run_config(comparison, scale, arm, seed=seed, runs_dir=runs_dir, device=device, data_path=data_path)
    return _finished_record(config, scale, arm)


def run_arm(comparison: Comparison, scale: Scale, data: ComparisonData, arm: ResolvedArm, *, seed: int,
            runs_dir: Path, device: str | None, data_path: str | None = None,
            trackers: tuple[TrackerName, ...] = ()) -> RunRecord:
    """Train `arm` with `seed` on `data` (or reuse the record of an identical earlier run) and score it,
    the training logged to `trackers` (which leave the run's identity and record as they are).
    Under torchrun every process trains; the first one scores and writes the record."""
    config = run_config(comparison, scale, arm, seed=seed, runs_dir=runs_dir, device=device, data_path=data_path)
    run_dir = Path(config.out_dir)
    earlier = _finished_record(config, scale, arm)
    if earlier is not None:
        log.info("%s seed %d: reusing %s", arm.label, seed, run_dir)
        return earlier
    log.info("%s seed %d: training %s (%s parameters)", arm.label, seed, arm.model, f"{arm.parameters:,}")
    result = fit(dataclasses.replace(config, trackers=trackers), datasets=data.datasets)
    train_metrics: dict[str, Any] = {}
    if data.train_eval is not None and _is_main_process():
        model = _final_weights(arm, result.checkpoint, num_classes=data.datasets.num_classes,
                               in_channels=data.config.in_channels)
        device_ = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        loader = build_loader(data.train_eval, batch_size=256, training=False, rank=0, world_size=1, seed=seed,
                              num_workers=0, pin_memory=False)
        train_metrics = evaluate(model.to(device_), loader, device=device_, multilabel=data.datasets.multilabel,
                                 class_weights=data.datasets.class_weights)
    resolved = json.loads((run_dir / CONFIG).read_text())
    record = RunRecord(
        arm=arm.label, seed=seed, parameters=arm.parameters,
        history=[dataclasses.asdict(r) for r in result.history],
        test=dict(result.metrics),
        train={k: float(v) for k, v in train_metrics.items() if isinstance(v, (int, float))},
        wall_s=result.wall_s, steps=result.steps, run_dir=str(run_dir),
        train_config=_plain(config.to_dict()), runtime=resolved.get("runtime", {}),
        score_training_images=scale.score_training_images,
    )
    if _is_main_process():
        record.save(run_dir)
    return record


def measure_arm_speed(arm: ResolvedArm, scale: Scale, data: ComparisonData, *, device: str | None) -> TrainingSpeed:
    """Training steps per second of `arm` at the scale's batch and image size."""
    device_ = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    in_channels = data.config.in_channels
    model = create_model(arm.model, num_classes=data.datasets.num_classes, in_channels=in_channels, **arm.overrides)
    multilabel = data.datasets.multilabel
    return measure_training_speed(
        model, model_name=arm.model, recipe=scale.multilabel_recipe if multilabel else scale.recipe,
        batch_size=scale.batch_size, image_size=data.config.image_size, in_channels=in_channels,
        num_classes=data.datasets.num_classes, device=device_, precision=scale.precision,
        warmup_steps=scale.speed_warmup_steps, steps=scale.speed_steps,
    )


@dataclass(frozen=True)
class ComparisonRun:
    """Everything a comparison produced, for the report."""

    comparison: Comparison
    scale: Scale
    arms: tuple[ResolvedArm, ...]
    records: tuple[RunRecord, ...]
    speeds: dict[str, TrainingSpeed]
    macs: dict[str, int]  # multiply-accumulates of one forward pass at the scale's image size
    headline: str
    seeds: tuple[int, ...]
    wall_s: float


def run_comparison(comparison: Comparison, scale: Scale, *, seeds: tuple[int, ...], runs_dir: Path,
                   device: str | None = None, data_path: str | None = None, train: bool = True,
                   trackers: tuple[TrackerName, ...] = ()) -> ComparisonRun:
    """All arms x all seeds (seed-major, so that a stopped run has every arm at the first seeds).

    With `train` False nothing is trained: every record must exist already (the ImageNet-scale
    runs, trained one arm and seed at a time by `train_one`), else a FileNotFoundError names them.
    """
    start = time.perf_counter()
    data = build_comparison_data(comparison, scale, data_path=data_path)
    arms = resolve_arms(comparison, scale, num_classes=data.datasets.num_classes, in_channels=data.config.in_channels)
    for arm in arms:
        matched = f", matched to {arm.matched_to} ({arm.match.target:,})" if arm.match else ""
        log.info("arm %s: %s %s, %s parameters%s", arm.label, arm.model, arm.overrides, f"{arm.parameters:,}", matched)
    if not train:
        found = {(a.label, s): previous_record(comparison, scale, a, seed=s, runs_dir=runs_dir, device=device,
                                               data_path=data_path)
                 for s in seeds for a in arms}
        missing = [f"{label} seed {seed}" for (label, seed), record in found.items() if record is None]
        if missing:
            raise FileNotFoundError(f"no finished runs under {runs_dir} for: {', '.join(missing)}")
    speeds = {arm.label: measure_arm_speed(arm, scale, data, device=device) for arm in arms} if comparison.measure_speed else {}
    records = [run_arm(comparison, scale, data, arm, seed=seed, runs_dir=runs_dir, device=device, data_path=data_path,
                       trackers=trackers)
               for seed in seeds for arm in arms]
    macs = {arm.label: count_macs(create_model(arm.model, num_classes=data.datasets.num_classes,
                                               in_channels=data.config.in_channels, **arm.overrides),
                                  data.config.image_size, data.config.in_channels) for arm in arms}
    return ComparisonRun(comparison, scale, arms, tuple(records), speeds, macs, data.headline, seeds,
                         time.perf_counter() - start)


def train_one(comparison: Comparison, scale: Scale, *, arm: str, seed: int, runs_dir: Path,
              device: str | None = None, data_path: str | None = None,
              trackers: tuple[TrackerName, ...] = ()) -> RunRecord:
    """One arm with one seed (what each torchrun command of an ImageNet-scale experiment runs)."""
    comparison.arm(arm)  # an unknown label fails here, listing the valid ones
    data = build_comparison_data(comparison, scale, data_path=data_path)
    arms = resolve_arms(comparison, scale, num_classes=data.datasets.num_classes, in_channels=data.config.in_channels)
    chosen = next(a for a in arms if a.label == arm)
    return run_arm(comparison, scale, data, chosen, seed=seed, runs_dir=runs_dir, device=device, data_path=data_path,
                   trackers=trackers)
