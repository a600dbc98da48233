"""`fit(config)`: one training run from a `TrainConfig` to a `TrainResult` and a run directory.

A `Run` has five phases, each a method: set up (`__init__`: data, model, optimizer, schedule,
trainer), `resume` (from the checkpoint `RunDirectory.resume_source` names; what may change:
`xception.train.resume`),
`train_epoch` (the rest of the current epoch, one `Trainer.train_step` per global batch),
`evaluate_and_checkpoint` (every 1/`evals_per_epoch` epoch and at the end: the Polyak average
when the recipe averages; a classifier's decision policy fitted on the validation split goes into
the weights exported, `fit_decision`), and `finish`. A checkpoint is the state of the run's parts (the trainer,
`Progress`, `ProcessStates`), captured and restored by `xception.train.checkpoint`; the run
directory's files are `xception.train.run_directory`'s. Every file goes through
`xception.atomic_write`: a kill at any moment leaves no half-written file.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import sys
import time
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from xception.atomic_write import remove_stale_temporaries, write_text_atomic
from xception.data.bad_images import BadImageRecord
from xception.data.balance import loss_class_weights, sampling_weights
from xception.data.loader import build_loader, default_num_workers
from xception.data.split_manifest import FILE_SOURCES, split_manifest
from xception.data.summary import split_size
from xception.description import GRID_SOURCES, Decision, Preprocessing, WeightsDescription
from xception.distributed import (
    DistributedContext,
    all_gather_objects,
    all_reduce_sum,
    barrier,
    broadcast_buffers,
    init_distributed,
)
from xception.errors import UserError
from xception.metrics.calibration import CalibrationBins, calibration_bins
from xception.models import create_model
from xception.models.trained import save_trained
from xception.runtime import (
    RuntimeSettings,
    check_precision,
    fastest_settings,
    grad_scaler,
    nhwc_weight_gradient_hazards,
    retain_freed_memory,
)
from xception.tasks import build_task
from xception.tasks.decision import calibrated_logits, fit_decision
from xception.tasks.reliability_figure import save_reliability_diagram
from xception.train.averaging import ModelAverage
from xception.train.checkpoint import (
    BEST,
    LATEST,
    capture,
    load_training_checkpoint,
    read_summary,
    restore,
    save_checkpoint,
)
from xception.train.config import EvalRecord, TrainConfig, TrainResult
from xception.train.finetune import Phases, initialize
from xception.train.logbook import Logbook, plot_curves
from xception.train.mix import build_mix
from xception.train.optimizer import build_optimizer
from xception.train.preemption import StopSignal
from xception.train.progress import ProcessStates, Progress
from xception.train.provenance import environment, git_commit
from xception.train.recipes import get_recipe
from xception.train.resume import config_changes
from xception.train.run_directory import (
    BEST_WEIGHTS,
    CHECKPOINTS,
    CONFIG,
    ENVIRONMENT,
    FINAL,
    FINAL_WEIGHTS,
    RELIABILITY,
    SPLIT,
    RunDirectory,
)
from xception.train.schedule import build_schedule
from xception.train.step import Trainer
from xception.train.trackers import Trackers, open_trackers

log = logging.getLogger(__name__)


def resolve_runtime(config: TrainConfig, device: torch.device) -> RuntimeSettings:
    """The config's precision, layout and compilation, each taken from `fastest_settings` when
    unset. Impossible combinations fail here, before any work. The reason names which were
    chosen, and why, so that a configured fp32 is not explained by the bf16 default."""
    fastest = fastest_settings(device, training=True)
    fields = {"precision": (config.precision, fastest.precision),
              "channels_last": (config.channels_last, fastest.channels_last),
              "compile": (config.compile, fastest.compile)}
    value = {name: default if given is None else given for name, (given, default) in fields.items()}
    check_precision(value["precision"], device.type)
    chosen = [name for name, (given, _) in fields.items() if given is None]
    shown = ", ".join(f"{name}={value[name]}" + (" (chosen)" if name in chosen else "") for name in fields)
    reason = f"(chosen): the defaults for {fastest.reason}" if chosen else "as configured"
    return RuntimeSettings(value["precision"], value["channels_last"], value["compile"], f"{shown}: {reason}")


def _safe_layout(settings: RuntimeSettings, module: nn.Module, config: TrainConfig, device: torch.device, *,
                 main: bool) -> RuntimeSettings:
    """`settings`, without channels_last where oneDNN would train `module` wrongly in it (fp32 on a
    CPU, `nhwc_weight_gradient_hazards`): said in a warning where channels_last was the default,
    refused where it was asked for."""
    if device.type != "cpu" or not settings.channels_last or settings.precision != "fp32":
        return settings
    hazards = nhwc_weight_gradient_hazards(module)
    if not hazards:
        return settings
    why = (f"oneDNN computes the weight gradient of a strided 1x1 convolution with fewer than 16 input channels "
           f"out of bounds in channels_last on a CPU in fp32 (uxlfoundation/oneDNN#6035: crashes, hangs or wrong "
           f"gradients); this model has {len(hazards)} ({_shorten(tuple(hazards))})")
    if config.channels_last:
        raise UserError(f"--channels-last: {why}; train it with --no-channels-last (or in bf16)")
    if main:
        log.warning("channels_last off for this model: %s", why)
    return dataclasses.replace(settings, channels_last=False,
                               reason=settings.reason + "; channels_last off (oneDNN#6035, narrow strided 1x1 convs)")


def fit(config: TrainConfig, *, datasets: Any | None = None) -> TrainResult:
    """Train as `config` says and return the final metrics, the history and the paths.

    `datasets` (an `xception.data.Datasets`) replaces `build_datasets(config.data)`, e.g. for an
    in-memory data set. Under `torchrun` every process calls this; rank 0 writes the run directory.
    A run directory that holds a checkpoint is continued (see `xception.train.resume`).
    """
    run = Run(config, datasets=datasets)
    try:
        run.resume()
        while run.train_epoch():
            pass
        return run.finish()
    except BaseException:
        if run.logbook is not None:
            run.logbook.close("failed")  # the trackers' runs say so (a later attempt may continue them)
        raise


class Run:
    """One training run: what `fit` builds once, and the phases that advance it."""

    def __init__(self, config: TrainConfig, *, datasets: Any | None = None) -> None:
        """Set up: check, join the process group, build the data, model, optimizer and trainer."""
        config.check()
        self.config = config
        self.context = context = init_distributed(config.device)
        self.recipe = recipe = get_recipe(config.recipe, **config.recipe_overrides)
        self.settings = settings = resolve_runtime(config, context.device)
        _check_config(config, context)
        if config.cpu_threads is not None:
            torch.set_num_threads(config.cpu_threads)
        kept = context.device.type == "cpu" and retain_freed_memory()
        if context.is_main:
            log.info("runtime: %s; %d CPU thread(s)%s", settings.reason, torch.get_num_threads(),
                     "; freed memory kept for reuse (glibc malloc, no per-step page faults)" if kept else "")
        _seed_everything(config.seed)  # the same initial weights on every process
        self.task = build_task(config.model)
        if datasets is None:
            from xception.data import build_datasets

            datasets = build_datasets(config.data)
        self.task.check_data(datasets)
        self.datasets = datasets
        if datasets.multilabel and recipe.loss == "softmax":
            log.warning("multi-label data with a softmax loss: targets become normalised distributions")
        self.module = self._build_module()
        _seed_everything(config.seed + context.rank)  # different dropout and augmentation per process

        self.sample_weights = sampling_weights(config.data, datasets.train)  # None unless a balanced sampler
        self.epoch_size = len(datasets.train)
        self.steps_per_epoch = self.epoch_size // config.batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(f"the training set has {self.epoch_size} examples, fewer than one batch of "
                             f"{config.batch_size}; lower --batch-size")
        epochs = config.epochs if config.epochs is not None else recipe.epochs
        if config.steps is None and epochs is None:
            raise ValueError(f"recipe {recipe.name!r} has no default length; give --epochs or --steps")
        self.total_steps = (config.steps if config.steps is not None
                            else max(1, math.ceil(epochs * self.steps_per_epoch)))
        self.trainer = self._build_trainer()
        self.eval_model = self.trainer.average if self.trainer.average is not None else self.module
        self.run_dir = RunDirectory(Path(config.out_dir))
        self.micro_batch = config.batch_size // (context.world_size * config.accumulation_steps)
        self.num_workers = (config.num_workers if config.num_workers is not None
                            else default_num_workers(context.world_size))
        self.eval_every = max(1, self.steps_per_epoch // config.evals_per_epoch)
        self.bad_train, self.bad_val = (
            BadImageRecord(config.bad_images, split=split, split_size=split_size(data),
                           max_fraction=config.bad_image_fraction)
            for split, data in (("training", datasets.train), ("validation", datasets.val)))
        self.val_loader = build_loader(datasets.val, batch_size=max(self.micro_batch, 64), training=False,
                                       rank=context.rank, world_size=context.world_size, seed=config.seed,
                                       num_workers=self.num_workers, pin_memory=context.device.type == "cuda",
                                       bad_images=self.bad_val)
        self.progress = Progress(self.trainer, steps_per_epoch=self.steps_per_epoch, bad_train=self.bad_train,
                                 processes=context.world_size, micro_batch=self.micro_batch)
        self.stop_signal = StopSignal()
        self.processes = ProcessStates(context.rank)
        # What a checkpoint holds, part by part (xception.train.checkpoint.capture and restore).
        self.parts = {"trainer": self.trainer, "progress": self.progress, "processes": self.processes}
        self.logbook: Logbook | None = None
        # The decision policy fitted at the last evaluation (fit_decision), for the weights exported next.
        self.decision: Decision | None = None
        self.decision_refused: str | None = None
        self.reliability_bins: dict[str, CalibrationBins] | None = None
        self.bar = None
        self.window_start = time.perf_counter()

    def _build_module(self) -> nn.Module:
        config, recipe = self.config, self.recipe
        module = create_model(
            config.model, num_classes=self.datasets.num_classes, in_channels=config.data.in_channels,
            drop_rate=recipe.drop_rate, **config.model_overrides,
        )
        self.init = None
        if config.init_weights is not None:
            # Every process loads the same file; a resumed run loads it too and then its checkpoint.
            self.init = initialize(module, config.init_weights, class_names=list(self.datasets.class_names))
            if self.context.is_main:
                log.info("started from %s (%s, sha256 %s): %d tensors loaded into the %s; freshly initialised: "
                         "%s", self.init.weights, self.init.file, self.init.sha256[:16], self.init.loaded,
                         self.init.into, _shorten(self.init.fresh) + (f" ({self.init.reason})" if self.init.reason
                                                                      else ""))
        if config.sync_batchnorm and self.context.distributed:
            module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
        self.settings = _safe_layout(self.settings, module, config, self.context.device, main=self.context.is_main)
        return module.to(self.context.device, memory_format=self.settings.memory_format)

    def _build_trainer(self) -> Trainer:
        config, recipe, context, module = self.config, self.recipe, self.context, self.module
        schedule = build_schedule(recipe, batch_size=config.batch_size, epoch_size=self.epoch_size,
                                  total_samples=self.total_steps * config.batch_size)
        phases = Phases(module, recipe, epoch_size=self.epoch_size)
        phases = phases if phases.active else None
        optimizer = build_optimizer(module, recipe=recipe, model_name=config.model, lr=schedule(0),
                                    trunk=phases.trunk if phases is not None else None)
        average = (ModelAverage(module, decay=recipe.average_decay, bn_policy=recipe.average_bn_policy)
                   if recipe.average_decay is not None else None)
        scaler = grad_scaler(context.device.type, self.settings.precision)
        model: nn.Module = module
        if context.distributed:
            # A frozen trunk gets no gradients during the head phase: DDP must not wait for them.
            model = nn.parallel.DistributedDataParallel(
                module, device_ids=[context.device] if context.device.type == "cuda" else None,
                find_unused_parameters=phases is not None and phases.head_samples > 0)
        if self.settings.compile:
            model = torch.compile(model)
        return Trainer(
            model=model, module=module, optimizer=optimizer, schedule=schedule,
            loss_fn=self.task.loss(recipe, weight=loss_class_weights(config.data, self.datasets)),
            device=context.device, autocast_dtype=self.settings.autocast_dtype,
            channels_last=self.settings.channels_last, batch_size=config.batch_size, average=average,
            grad_clip_norm=recipe.grad_clip_norm, scaler=scaler, phases=phases,
            mix=build_mix(recipe, num_classes=self.datasets.num_classes, task=self.task.name,
                          multilabel=self.datasets.multilabel),
        )

    # -- resume -------------------------------------------------------------------------------

    def resume(self) -> None:
        """Continue from the checkpoint the run directory names (rank 0 decides, every rank loads),
        then open the run directory: stale temporary files removed, metrics.jsonl cut back to the
        checkpoint's step, config.json and environment.json written."""
        config, context, run_dir = self.config, self.context, self.run_dir
        source = run_dir.resume_source(resume=config.resume, restart=config.restart)
        source = all_gather_objects(source)[0]  # one decision, even if the file system is slow to agree
        changes: dict[str, list[Any]] = {}
        if source is None and not config.restart:
            run_dir.check_fresh_start()
        if source is not None:
            changes = self._load(load_training_checkpoint(source), source)
        trackers = self._open_run_dir(source) if context.is_main else None
        barrier()  # no rank starts before rank 0 has cleaned the run directory
        self.logbook = Logbook(run_dir.path, active=context.is_main, trackers=trackers)
        if changes:
            self.logbook.write("resume", {"step": self.trainer.step, "from": str(source), "changed": changes})
        self.bar = _progress_bar(config, context, self.total_steps, self.trainer.step)
        self.progress.restart_clock()
        self.window_start = time.perf_counter()

    def _load(self, state: dict[str, Any], source: Path) -> dict[str, list[Any]]:
        changes = config_changes(state["config"], self.config.to_dict(), saved_recipe=state["recipe"],
                                 recipe=dataclasses.asdict(self.recipe), source=source)
        if list(state["class_names"]) != list(self.datasets.class_names):
            raise ValueError(f"cannot resume from {source}: its classes differ from the data set's")
        restore(state, self.parts)
        if self.context.is_main:
            log.info("resumed from %s at step %d of %d", source, self.trainer.step, self.total_steps)
            for name, (before, now) in changes.items():
                log.warning("resume at step %d changes %s: %r -> %r", self.trainer.step, name, before, now)
        return changes

    def _open_run_dir(self, source: Path | None) -> Trackers:
        """Prepare the run directory and open the trackers (continuing their runs where this run
        continues its own directory); config.json records both."""
        run_dir, config = self.run_dir, self.config
        run_dir.path.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(run_dir.path)
        continued_here = source is not None and RunDirectory.of(source).path.resolve() == run_dir.path.resolve()
        earlier_tracking = run_dir.tracking() if continued_here else None
        if source is None:
            run_dir.clear_outputs()  # a fresh start: nothing of an earlier run may mix with this one
        else:
            run_dir.keep_metrics_up_to(self.trainer.step, source=RunDirectory.of(source))
            if self.trainer.step < self.total_steps:  # an extended run: its earlier finish no longer holds
                run_dir.forget_finish()
        resolved = {"train": config.to_dict(), "recipe": dataclasses.asdict(self.recipe),
                    "runtime": dataclasses.asdict(self.settings),
                    "schedule": dataclasses.asdict(self.trainer.schedule),
                    "num_classes": self.datasets.num_classes, "class_names": list(self.datasets.class_names),
                    "total_steps": self.total_steps, "steps_per_epoch": self.steps_per_epoch,
                    "attempts": self.progress.attempts,  # the earlier attempts: where each was interrupted
                    "init": dataclasses.asdict(self.init) if self.init is not None else None}
        trackers = open_trackers(config.trackers, run_dir.path, params=json.loads(json.dumps(resolved, default=str)),
                                 earlier=earlier_tracking, first_step=self.trainer.step + 1 if source else None)
        resolved["tracking"] = trackers.state()
        write_text_atomic(run_dir / CONFIG, json.dumps(resolved, indent=2, default=str))
        write_text_atomic(run_dir / ENVIRONMENT, json.dumps(environment(self.context.world_size), indent=2))
        # Which files each split holds, to check and reproduce the cut (the mosaics' cut of Fashion-MNIST
        # items is a pure function of data.seed and data.val_split, both in config.json).
        if config.data.val_split is not None and config.data.source in FILE_SOURCES:
            write_text_atomic(run_dir / SPLIT, json.dumps(split_manifest(config.data, self.datasets), indent=2))
        return trackers

    # -- train ----------------------------------------------------------------------------------

    def train_loader(self, epoch: int, start_batch: int):
        """This process's micro-batches of `epoch` from global batch `start_batch` on: the one place
        where the global batch and the resume position become a loader."""
        return build_loader(self.datasets.train, batch_size=self.micro_batch, training=True,
                            rank=self.context.rank, world_size=self.context.world_size, seed=self.config.seed,
                            epoch=epoch, num_workers=self.num_workers,
                            pin_memory=self.context.device.type == "cuda", global_batch=self.config.batch_size,
                            start_batch=start_batch, bad_images=self.bad_train, sample_weights=self.sample_weights)

    def train_epoch(self) -> bool:
        """Train the rest of the current epoch; False once the run is over (finished or stopped)."""
        if self.over():
            return False
        epoch, start_batch = divmod(self.trainer.step, self.steps_per_epoch)
        batches = iter(self.train_loader(epoch, start_batch))
        for micro_batches in _groups(batches, self.config.accumulation_steps):
            self.train_step(micro_batches)
            if self.over():
                return False
        return True

    def over(self) -> bool:
        stop = self.config.stop_after_steps
        return (self.trainer.step >= self.total_steps or (stop is not None and self.trainer.step >= stop)
                or self.progress.stopped_by is not None)

    def train_step(self, micro_batches: list) -> None:
        """One optimizer step, then what is due after it: a log row, an evaluation, a checkpoint."""
        config, trainer = self.config, self.trainer
        loss = trainer.train_step(micro_batches)
        if not math.isfinite(loss):
            raise _diverged(loss, step=trainer.step, lr=trainer.optimizer.param_groups[0]["lr"], run_dir=self.run_dir)
        self.processes.losses.add(loss)
        if trainer.step % config.log_every_steps == 0 or trainer.step == self.total_steps:
            self.log_step()
        if self.bar is not None:
            self.bar.update(1)
        if (config.evaluate_during_training and trainer.step % self.eval_every == 0) or trainer.step == self.total_steps:
            self.evaluate_and_checkpoint()
        elif ((config.checkpoint_every_steps and trainer.step % config.checkpoint_every_steps == 0)
              or trainer.step == config.stop_after_steps):
            self.save(LATEST)
        if trainer.step < self.total_steps and self.stop_signal.agreed():
            self.progress.stopped_by = self.stop_signal.stopped_by
            self.save(LATEST)  # the attempt's record names the signal, even where this step was saved above

    def log_step(self) -> None:
        trainer, losses = self.trainer, self.processes.losses
        lr = trainer.optimizer.param_groups[0]["lr"]
        elapsed = time.perf_counter() - self.window_start
        row = {"step": trainer.step, "epoch": trainer.step / self.steps_per_epoch, "samples": trainer.samples,
               "loss": losses.log_sum / losses.log_steps, "lr": lr,
               "images_per_s": losses.log_steps * self.config.batch_size / max(elapsed, 1e-9),
               "wall_s": self.progress.wall_s()}
        self.logbook.write("step", row)
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{lr:.3g}", img_s=f"{row['images_per_s']:.0f}")
        losses.log_sum, losses.log_steps, self.window_start = 0.0, 0, time.perf_counter()

    # -- evaluate and checkpoint ------------------------------------------------------------------

    def evaluate_and_checkpoint(self) -> None:
        """Evaluate the evaluated model (the average when on), log it, save latest.pt (and best.pt
        and best.safetensors when the metric improved)."""
        trainer, datasets, context = self.trainer, self.datasets, self.context
        # Under DDP each process has updated its own BatchNorm statistics since DDP last broadcast
        # rank 0's (before each forward), and each process's average followed its own. Rank 0's are
        # the ones DDP trains with and the ones exported: every process evaluates with them, so the
        # reported metrics are those of the saved weights (averaging them instead would make a model
        # that no process trained with, at a collective per step; this is one per evaluation).
        broadcast_buffers(self.eval_model)
        metrics = self.task.evaluate(self.eval_model, self.val_loader, device=context.device,
                                     num_classes=datasets.num_classes, multilabel=datasets.multilabel,
                                     class_weights=datasets.class_weights,
                                     autocast_dtype=self.settings.autocast_dtype,
                                     channels_last=self.settings.channels_last,
                                     **({"keep_logits": True} if self.fits_decision else {}))
        if self.fits_decision:
            self.fit_decision(metrics)
        losses, progress = self.processes.losses, self.progress
        train_loss = float(all_reduce_sum(torch.tensor(losses.eval_sum / max(losses.eval_steps, 1)))) / context.world_size
        losses.eval_sum, losses.eval_steps = 0.0, 0
        scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        if self.config.bad_images == "skip":
            scalars["train_bad_images"] = len(self.bad_train.gather())
        record = EvalRecord(epoch=trainer.step / self.steps_per_epoch, step=trainer.step, samples=trainer.samples,
                            wall_s=progress.wall_s(), train_loss=train_loss,
                            lr=trainer.optimizer.param_groups[0]["lr"], metrics=scalars)
        progress.history.append(record)
        row = {k: v for k, v in dataclasses.asdict(record).items() if k != "metrics"}
        self.logbook.write("eval", {**row, **scalars})
        if context.is_main:
            log.info("step %d (epoch %.2f): %s", trainer.step, record.epoch,
                     ", ".join(f"{k} {v}" if isinstance(v, int) else f"{k} {v:.4f}" for k, v in scalars.items()))
        key = self.task.key_metric(metrics)
        improved = metrics[key] > progress.best_metric
        progress.best_metric = max(progress.best_metric, metrics[key])
        self.save(LATEST)
        if improved:
            self.save(BEST)
            self.export_weights(BEST_WEIGHTS, metrics)

    @property
    def fits_decision(self) -> bool:
        """Whether the weights get a decision policy fitted on the evaluation split: a classifier's,
        where that split is a validation split (`val_split`, or the data's own), not the test set
        that Fashion-MNIST and its mosaics evaluate on."""
        data = self.config.data
        return self.task.name == "classification" and (data.val_split is not None or data.source not in GRID_SOURCES)

    def fit_decision(self, metrics: dict[str, Any]) -> None:
        """The decision policy of the weights just evaluated (`xception.tasks.decision.fit_decision`,
        the threshold by the equal error rate), kept for the weights exported next, with the
        reliability diagram's bins; a split that cannot fit one (under 20 images, one class) leaves
        none, said once."""
        logits, targets = metrics.pop("logits"), metrics.pop("targets")
        try:
            self.decision = fit_decision(logits, targets, multilabel=self.datasets.multilabel)
        except ValueError as error:
            if self.decision_refused is None and self.context.is_main:
                log.warning("no decision policy stored with the weights: %s", error)
            self.decision, self.decision_refused = None, str(error)
            return
        probabilities = calibrated_logits(logits, self.decision)
        probabilities = probabilities.sigmoid() if self.datasets.multilabel else probabilities.softmax(1)
        self.reliability_bins = {"raw": metrics["calibration_bins"]["raw"],
                                 "calibrated": calibration_bins(probabilities, targets,
                                                                multilabel=self.datasets.multilabel)}

    def checkpoint_state(self) -> dict[str, Any]:
        """What `resume` needs; a collective (every rank's RNG and loss windows): every rank builds it."""
        trainer, config = self.trainer, self.config
        return capture(
            self.parts,
            # The data order is a function of these (see xception.data.loader.GlobalBatchSampler).
            data_order={"seed": config.seed, "global_batch": config.batch_size,
                        "epoch": trainer.step // self.steps_per_epoch, "start_batch": trainer.step % self.steps_per_epoch},
            config=config.to_dict(), recipe=dataclasses.asdict(self.recipe), num_classes=self.datasets.num_classes,
            class_names=list(self.datasets.class_names), git_commit=git_commit(),
        )

    def save(self, name: str) -> None:
        state = self.checkpoint_state()
        if self.context.is_main:
            save_checkpoint(state, self.run_dir / CHECKPOINTS / name)
        barrier()

    def export_weights(self, name: str, metrics: dict[str, Any]) -> None:
        """The evaluated weights (the average when on) as a safetensors file that `xception
        predict` and `xception eval` read: the model's identity, class names, data preparation."""
        if not self.context.is_main:
            return
        datasets, average = self.datasets, self.trainer.average
        model = average.module if average is not None else self.module
        data = dataclasses.asdict(self.config.data)
        description = WeightsDescription(
            model_name=self.config.model, num_classes=datasets.num_classes, in_channels=self.config.data.in_channels,
            task=self.task.name, image_size=self.config.data.image_size, class_names=tuple(datasets.class_names),
            multilabel=datasets.multilabel, preprocessing=Preprocessing.of_data(data), data=data,
            decision=self.decision,
            provenance={"recipe": self.recipe.name, "step": self.trainer.step,
                        "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float))},
                        "git_commit": git_commit(),
                        "split_sizes": {"train": split_size(datasets.train), "val": split_size(datasets.val)},
                        **({"init": {"weights": self.init.weights, "sha256": self.init.sha256}} if self.init else {})},
        )
        save_trained(self.run_dir / name, model, description)

    # -- finish ---------------------------------------------------------------------------------

    def finish(self) -> TrainResult:
        """When the budget is done: weights.safetensors, then final.json (the mark of a finished
        run). A stopped run writes neither and says where it stopped."""
        trainer, context, run_dir = self.trainer, self.context, self.run_dir
        if self.bar is not None:
            self.bar.close()
        self.stop_signal.close()
        history = self.progress.history
        finished = trainer.step >= self.total_steps and bool(history)
        attempts = self.progress.all_attempts()
        wall_s = sum(a["wall_s"] for a in attempts)
        if finished:
            self.export_weights(FINAL_WEIGHTS, history[-1].metrics)
            self.logbook.log_file(run_dir / FINAL_WEIGHTS)
            if context.is_main and self.decision is not None:
                log.info("decision policy stored with the weights: temperature %.4g, %s", self.decision.temperature,
                         self.decision.reason() if self.decision.threshold is not None else "argmax")
            if context.is_main:
                final = {**dataclasses.asdict(history[-1]), "total_steps": self.total_steps,
                         "wall_s_all_attempts": wall_s, "attempts": attempts}
                write_text_atomic(run_dir / FINAL, json.dumps(final, indent=2))
        if context.is_main and history:
            self.logbook.log_image(plot_curves(run_dir.path), trainer.step)
            if self.reliability_bins is not None:
                save_reliability_diagram(run_dir / RELIABILITY, self.reliability_bins,
                                         title=f"validation split, step {trainer.step}: {self.decision.reason()}")
            self.task.finish(run_dir.path, self.eval_model, self.datasets, context.device)
        if context.is_main and not finished:
            log.info("stopped at step %d of %d%s; run the same command again to continue", trainer.step,
                     self.total_steps, f" by {self.progress.stopped_by}" if self.progress.stopped_by else "")
        # Waits for the trackers' queued calls (bounded: xception.train.trackers.guarded).
        self.logbook.close("finished" if finished else "stopped")
        barrier()  # every process returns once rank 0 has written the run directory
        return TrainResult(
            config=self.config, metrics=dict(history[-1].metrics) if history else {},
            history=history, run_dir=run_dir.path, checkpoint=run_dir.latest,
            best_checkpoint=run_dir.best if run_dir.best.exists() else None,
            weights=run_dir / FINAL_WEIGHTS if finished else None,
            steps=trainer.step, total_steps=self.total_steps, finished=finished, wall_s=wall_s, attempts=attempts,
        )


def _shorten(keys: tuple[str, ...], shown: int = 4) -> str:
    if not keys:
        return "nothing"
    return ", ".join(keys[:shown]) + (f" and {len(keys) - shown} more" if len(keys) > shown else "")


def _groups(batches: Iterator, size: int) -> Iterator[list]:
    """Consecutive groups of `size` micro-batches (one optimizer step each); a short tail is dropped."""
    while group := list(islice(batches, size)):
        if len(group) == size:
            yield group


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _check_config(config: TrainConfig, context: DistributedContext) -> None:
    per_process = config.batch_size // config.accumulation_steps
    if per_process % context.world_size:
        raise ValueError(f"batch size {config.batch_size} must be a multiple of processes ({context.world_size}) "
                         f"x accumulation steps ({config.accumulation_steps})")


class DivergedError(UserError, FloatingPointError):
    """The training loss became NaN or infinite."""


def _diverged(loss: float, *, step: int, lr: float, run_dir: RunDirectory) -> DivergedError:
    """The error for a loss that diverged at `step`, naming the checkpoint to resume from."""
    checkpoint = run_dir.latest
    advice = "a lower learning rate (--set recipe.lr=...) or --precision fp32"
    if checkpoint.is_file():
        saved = read_summary(checkpoint)["step"]
        where = (f"the last checkpoint, {checkpoint}, is from step {saved}: resume from it "
                 f"(xception train --resume {run_dir.path}) with {advice}")
    else:
        where = f"no checkpoint was written yet: start again with {advice}"
    return DivergedError(f"the training loss became {loss} at step {step} (learning rate {lr:.4g}); {where}")


def _progress_bar(config: TrainConfig, context: DistributedContext, total: int, initial: int):
    # Only on a terminal: into a log file, tqdm writes every update as one endless line of carriage
    # returns; a log gets the evaluation lines (`log.info`) and metrics.jsonl the per-step rows.
    if not (config.progress and context.is_main and sys.stderr.isatty()):
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, desc="train", file=sys.stderr)
