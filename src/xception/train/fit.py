"""`fit(config)`: one training run from a `TrainConfig` to a `TrainResult` and a run directory.

The loop: for every global batch, `Trainer.train_step`; every 1/`evals_per_epoch` epoch and at the
end, evaluate (the Polyak average when the recipe averages), then checkpoint. The run directory
(`config.out_dir`) receives config.json, environment.json, metrics.jsonl, tensorboard/,
checkpoints/latest.pt and best.pt, curves.png and final.json.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import time
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from xception.data.bad_images import BadImageRecord
from xception.data.loader import build_loader, default_num_workers
from xception.data.summary import split_size
from xception.distributed import (
    DistributedContext,
    all_gather_objects,
    all_reduce_sum,
    barrier,
    init_distributed,
)
from xception.models import create_model
from xception.models.registry import get_entry
from xception.models.weights import save_weights
from xception.runtime import RuntimeSettings, fastest_settings, retain_freed_memory
from xception.train.averaging import ModelAverage
from xception.train.checkpoint import (
    BEST,
    LATEST,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from xception.train.config import EvalRecord, TrainConfig, TrainResult
from xception.train.logbook import Logbook, plot_curves
from xception.train.optimizer import build_optimizer
from xception.train.provenance import environment, git_commit
from xception.train.recipes import get_recipe
from xception.train.schedule import build_schedule
from xception.train.step import Trainer
from xception.train.task import build_task

log = logging.getLogger(__name__)

FINAL_WEIGHTS = "weights.safetensors"  # the evaluated weights at the end of training
BEST_WEIGHTS = "best.safetensors"  # those of the best evaluation

# Fields of TrainConfig that must not change on resume: they define the optimisation itself.
_RESUME_INVARIANT = ("task", "model", "model_overrides", "recipe", "recipe_overrides", "batch_size", "seed", "data")


def resolve_runtime(config: TrainConfig, device: torch.device) -> RuntimeSettings:
    """The config's precision, layout and compilation, each taken from `fastest_settings` when
    unset. Impossible combinations fail here, before any work."""
    fastest = fastest_settings(device, training=True)
    precision = config.precision or fastest.precision
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(f"precision fp16 needs a CUDA GPU (loss scaling), but the device is {device.type}; "
                         "use --precision bf16 or fp32")
    if precision not in ("fp32", "bf16", "fp16"):
        raise ValueError(f"unknown precision {precision!r}; valid: fp32, bf16, fp16")
    chosen = [f"precision={precision}" + (" (chosen)" if config.precision is None else "")]
    channels_last = fastest.channels_last if config.channels_last is None else config.channels_last
    compile_ = fastest.compile if config.compile is None else config.compile
    reason = fastest.reason if None in (config.precision, config.channels_last, config.compile) else "as configured"
    chosen.append(f"channels_last={channels_last}, compile={compile_}")
    return RuntimeSettings(precision, channels_last, compile_, f"{', '.join(chosen)}: {reason}")


def fit(config: TrainConfig, *, datasets: Any | None = None) -> TrainResult:
    """Train as `config` says and return the final metrics, the history and the paths.

    `datasets` (an `xception.data.Datasets`) replaces `build_datasets(config.data)`, e.g. for an
    in-memory data set. Under `torchrun` every process calls this; rank 0 writes the run directory.
    """
    config.check()
    context = init_distributed(config.device)
    recipe = get_recipe(config.recipe, **config.recipe_overrides)
    settings = resolve_runtime(config, context.device)
    _check_config(config, context)
    if config.cpu_threads is not None:
        torch.set_num_threads(config.cpu_threads)
    kept = context.device.type == "cpu" and retain_freed_memory()
    if context.is_main:
        log.info("runtime: %s; %d CPU thread(s)%s", settings.reason, torch.get_num_threads(),
                 "; freed memory kept for reuse (glibc malloc, no per-step page faults)" if kept else "")
    _seed_everything(config.seed)  # the same initial weights on every process
    task = build_task(config.task)
    task.check_model(get_entry(config.model).task)
    if datasets is None:
        from xception.data import build_datasets

        datasets = build_datasets(config.data)
    task.check_data(datasets)
    if datasets.multilabel and recipe.loss == "softmax":
        log.warning("multi-label data with a softmax loss: targets become normalised distributions")
    module = create_model(
        config.model, num_classes=datasets.num_classes, in_channels=config.data.in_channels,
        drop_rate=recipe.drop_rate, **config.model_overrides,
    )
    if config.sync_batchnorm and context.distributed:
        module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
    module = module.to(context.device, memory_format=settings.memory_format)
    _seed_everything(config.seed + context.rank)  # different dropout and augmentation per process

    epoch_size = len(datasets.train)
    steps_per_epoch = epoch_size // config.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"the training set has {epoch_size} examples, fewer than one batch of "
                         f"{config.batch_size}; lower --batch-size")
    epochs = config.epochs if config.epochs is not None else recipe.epochs
    if config.steps is None and epochs is None:
        raise ValueError(f"recipe {recipe.name!r} has no default length; give --epochs or --steps")
    total_steps = config.steps if config.steps is not None else max(1, math.ceil(epochs * steps_per_epoch))
    schedule = build_schedule(recipe, batch_size=config.batch_size, epoch_size=epoch_size,
                              total_samples=total_steps * config.batch_size)
    optimizer = build_optimizer(module, recipe=recipe, model_name=config.model, lr=schedule(0))
    average = (ModelAverage(module, decay=recipe.average_decay, bn_policy=recipe.average_bn_policy)
               if recipe.average_decay is not None else None)
    scaler = torch.amp.GradScaler(context.device.type, enabled=settings.precision == "fp16")
    model: nn.Module = module
    if context.distributed:
        model = nn.parallel.DistributedDataParallel(
            module, device_ids=[context.device] if context.device.type == "cuda" else None)
    if settings.compile:
        model = torch.compile(model)
    trainer = Trainer(
        model=model, module=module, optimizer=optimizer, schedule=schedule,
        loss_fn=task.loss(recipe),
        device=context.device, autocast_dtype=settings.autocast_dtype, channels_last=settings.channels_last,
        batch_size=config.batch_size, average=average, grad_clip_norm=recipe.grad_clip_norm, scaler=scaler,
    )

    bad_train, bad_val = (BadImageRecord(config.bad_images, split=split, split_size=split_size(data),
                                         max_fraction=config.bad_image_fraction)
                          for split, data in (("training", datasets.train), ("validation", datasets.val)))
    run_dir = Path(config.out_dir)
    history: list[EvalRecord] = []
    best_metric, wall_before = -math.inf, 0.0
    if config.resume:
        state = load_checkpoint(config.resume)
        _check_resume(config, state)
        module.load_state_dict(state["model"])
        if average is not None:
            average.load_state_dict(state["average"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        trainer.step = state["progress"]["step"]
        wall_before = state["progress"]["wall_s"]
        best_metric = state["progress"]["best_metric"]
        history = [EvalRecord(**r) for r in state["history"]]
        bad_train.paths.update(state.get("bad_images", {}))
        ranks = state["rng"]
        restore_rng_state(ranks[context.rank] if context.rank < len(ranks) else ranks[0])
        if context.is_main:
            log.info("resumed from %s at step %d", config.resume, trainer.step)

    logbook = Logbook(run_dir, active=context.is_main, tensorboard=config.tensorboard)
    if context.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        resolved = {"train": config.to_dict(), "recipe": dataclasses.asdict(recipe),
                    "runtime": dataclasses.asdict(settings), "schedule": dataclasses.asdict(schedule),
                    "num_classes": datasets.num_classes, "class_names": list(datasets.class_names),
                    "total_steps": total_steps, "steps_per_epoch": steps_per_epoch}
        (run_dir / "config.json").write_text(json.dumps(resolved, indent=2, default=str))
        (run_dir / "environment.json").write_text(json.dumps(environment(context.world_size), indent=2))

    accumulation = config.accumulation_steps
    micro_batch = config.batch_size // (context.world_size * accumulation)
    num_workers = config.num_workers if config.num_workers is not None else default_num_workers(context.world_size)
    eval_every = max(1, steps_per_epoch // config.evals_per_epoch)
    eval_model = average if average is not None else module
    val_loader = build_loader(datasets.val, batch_size=max(micro_batch, 64), training=False, rank=context.rank,
                              world_size=context.world_size, seed=config.seed, num_workers=num_workers,
                              pin_memory=context.device.type == "cuda", bad_images=bad_val)

    def checkpoint_state() -> dict[str, Any]:
        return {
            "format": "xception-train-checkpoint/1",
            "model": module.state_dict(),
            "average": average.state_dict() if average is not None else {},
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(),
            "progress": {"step": trainer.step, "samples": trainer.samples, "epoch": trainer.step / steps_per_epoch,
                         "wall_s": wall_before + time.perf_counter() - start, "best_metric": best_metric},
            # The data order is a function of these (see xception.data.loader.GlobalBatchSampler).
            "data_order": {"seed": config.seed, "global_batch": config.batch_size,
                           "epoch": trainer.step // steps_per_epoch, "start_batch": trainer.step % steps_per_epoch},
            "rng": all_gather_objects(capture_rng_state()),
            "config": config.to_dict(),
            "recipe": dataclasses.asdict(recipe),
            "num_classes": datasets.num_classes,
            "class_names": list(datasets.class_names),
            "git_commit": git_commit(),
            "history": [dataclasses.asdict(r) for r in history],
            "bad_images": bad_train.gather(),  # training files skipped so far, so a resumed run counts them
        }

    def export_weights(name: str, metrics: dict[str, Any]) -> None:
        """The evaluated weights (the average when on) as a safetensors file that `xception
        predict` and `xception eval` read: the model's identity, class names, data preparation."""
        if context.is_main:
            save_weights(eval_model.module if average is not None else module, run_dir / name, metadata={
                "class_names": list(datasets.class_names), "multilabel": datasets.multilabel,
                "data": dataclasses.asdict(config.data), "recipe": recipe.name, "step": trainer.step,
                "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float))},
                "git_commit": git_commit(),
            })

    def save(name: str) -> None:
        state = checkpoint_state()  # a collective (RNG gather): every rank builds it
        if context.is_main:
            save_checkpoint(state, run_dir / "checkpoints" / name)
        barrier()

    progress = _progress_bar(config, context, total_steps, trainer.step)
    start = time.perf_counter()
    window_loss, window_steps, window_start = 0.0, 0, time.perf_counter()
    since_eval_loss, since_eval_steps = 0.0, 0
    while trainer.step < total_steps:
        epoch = trainer.step // steps_per_epoch
        loader = build_loader(datasets.train, batch_size=micro_batch, training=True, rank=context.rank,
                              world_size=context.world_size, seed=config.seed, epoch=epoch,
                              num_workers=num_workers, pin_memory=context.device.type == "cuda",
                              global_batch=config.batch_size, start_batch=trainer.step % steps_per_epoch,
                              bad_images=bad_train)
        for micro_batches in _groups(iter(loader), accumulation):
            loss = trainer.train_step(micro_batches)
            if not math.isfinite(loss):
                raise FloatingPointError(f"the training loss became {loss} at step {trainer.step}; "
                                         "lower the learning rate or use --precision fp32")
            window_loss, window_steps = window_loss + loss, window_steps + 1
            since_eval_loss, since_eval_steps = since_eval_loss + loss, since_eval_steps + 1
            lr = optimizer.param_groups[0]["lr"]
            if trainer.step % config.log_every_steps == 0 or trainer.step == total_steps:
                elapsed = time.perf_counter() - window_start
                row = {"step": trainer.step, "epoch": trainer.step / steps_per_epoch, "samples": trainer.samples,
                       "loss": window_loss / window_steps, "lr": lr,
                       "images_per_s": window_steps * config.batch_size / max(elapsed, 1e-9),
                       "wall_s": wall_before + time.perf_counter() - start}
                logbook.write("step", row)
                if progress is not None:
                    progress.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{lr:.3g}", img_s=f"{row['images_per_s']:.0f}")
                window_loss, window_steps, window_start = 0.0, 0, time.perf_counter()
            if progress is not None:
                progress.update(1)
            if (config.evaluate_during_training and trainer.step % eval_every == 0) or trainer.step == total_steps:
                metrics = task.evaluate(eval_model, val_loader, datasets, device=context.device,
                                        autocast_dtype=settings.autocast_dtype, channels_last=settings.channels_last)
                train_loss = float(all_reduce_sum(torch.tensor(since_eval_loss / since_eval_steps))) / context.world_size
                since_eval_loss, since_eval_steps = 0.0, 0
                scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
                if config.bad_images == "skip":
                    scalars["train_bad_images"] = len(bad_train.gather())
                record = EvalRecord(epoch=trainer.step / steps_per_epoch, step=trainer.step, samples=trainer.samples,
                                    wall_s=wall_before + time.perf_counter() - start, train_loss=train_loss,
                                    lr=lr, metrics=scalars)
                history.append(record)
                row = {k: v for k, v in dataclasses.asdict(record).items() if k != "metrics"}
                logbook.write("eval", {**row, **scalars})
                key = task.key_metric(metrics)
                if context.is_main:
                    log.info("step %d (epoch %.2f): %s", trainer.step, record.epoch,
                             ", ".join(f"{k} {v}" if isinstance(v, int) else f"{k} {v:.4f}" for k, v in scalars.items()))
                improved = metrics[key] > best_metric
                best_metric = max(best_metric, metrics[key])
                save(LATEST)
                if improved:
                    save(BEST)
                    export_weights(BEST_WEIGHTS, metrics)
            elif config.checkpoint_every_steps and trainer.step % config.checkpoint_every_steps == 0:
                save(LATEST)
            if trainer.step >= total_steps:
                break
            if config.stop_after_steps is not None and trainer.step >= config.stop_after_steps:
                save(LATEST)
                break
        if config.stop_after_steps is not None and trainer.step >= config.stop_after_steps:
            break
    if progress is not None:
        progress.close()
    logbook.close()
    if history:
        export_weights(FINAL_WEIGHTS, history[-1].metrics)
    if context.is_main and history:
        (run_dir / "final.json").write_text(json.dumps(dataclasses.asdict(history[-1]), indent=2))
        plot_curves(run_dir)
        task.finish(run_dir, eval_model, datasets, context.device)
    barrier()  # every process returns once rank 0 has written the run directory
    return TrainResult(
        config=config, metrics=dict(history[-1].metrics) if history else {}, history=history, run_dir=run_dir,
        checkpoint=run_dir / "checkpoints" / LATEST,
        best_checkpoint=run_dir / "checkpoints" / BEST if (run_dir / "checkpoints" / BEST).exists() else None,
        weights=run_dir / FINAL_WEIGHTS,
        steps=trainer.step, wall_s=wall_before + time.perf_counter() - start,
    )


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


def _check_resume(config: TrainConfig, state: dict[str, Any]) -> None:
    saved, now = state["config"], config.to_dict()
    changed = [k for k in _RESUME_INVARIANT if saved.get(k) != now.get(k)]
    if changed:
        raise ValueError(f"cannot resume: {', '.join(changed)} differ from the checkpoint's; "
                         "resume with the same settings (xception train --resume RUN_DIR takes them from the checkpoint)")


def _progress_bar(config: TrainConfig, context: DistributedContext, total: int, initial: int):
    if not (config.progress and context.is_main):
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, desc="train")
