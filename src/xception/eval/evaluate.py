"""Evaluate a model on a data set, on one process or many, counting every example exactly once.

Single-label data: top-1 and top-5 accuracy (section 4.4, ImageNet) from correct-prediction counts
summed over processes. Multi-label data: the scores of all processes are gathered, then mean
average precision, the paper's MAP@100 (section 4.3, JFT/FastEval14k; defined in
`xception.metrics.classification.map_at_k` and docs/metrics.md) and per-class AP.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from xception.data.bad_images import BadImageRecord, CheckedLoader
from xception.data.config import BadImagePolicy
from xception.distributed import all_gather_rows, all_reduce_sum
from xception.metrics.binary import binary_metrics
from xception.metrics.classification import average_precision, map_at_k, mean_average_precision, topk_correct
from xception.runtime import autocast


@torch.no_grad()
def evaluate(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    loader: DataLoader,
    *,
    device: torch.device,
    multilabel: bool,
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    class_weights: torch.Tensor | None = None,
    ks: tuple[int, ...] = (1, 5),
    progress: bool = False,
    keep_scores: bool = False,
) -> dict[str, Any]:
    """Metrics of `model` (a module, switched to eval mode, or an `xception.deploy.engines.Engine`) over this process's shard of `loader`, combined
    over all processes. Images (N, C, H, W) in [-1, 1]; targets class indices (N,) or multi-hot
    (N, num_classes).

    Returns `examples` (the total count, every example once), `loss` (mean cross-entropy, softmax
    or sigmoid) and either `top1`, `top5` (fractions in [0, 1]) or `map`, `map_at_100`,
    `per_class_ap` (a list; NaN for classes without positives). Two classes add the detection
    metrics of class 1's probability (`xception.metrics.binary`): `roc_auc`, `eer`, `average_precision`;
    `keep_scores` adds `scores` and `labels`, those probabilities and targets in loader order (one
    process). A loader from `build_loader` that
    skips unreadable images (`--bad-images skip`) adds `bad_images`, their number, all left out
    of `examples` and the metrics. `progress` draws a bar over this process's batches (stderr).
    """
    if isinstance(model, nn.Module):
        model.eval()
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    count = torch.zeros((), dtype=torch.long, device=device)
    correct = torch.zeros(len(ks), dtype=torch.long, device=device)
    all_scores, all_targets = [], []
    for images, targets in tqdm(loader, desc="evaluating", unit="batch", file=sys.stderr, disable=not progress):
        images = images.to(device, non_blocking=True).contiguous(memory_format=memory_format)
        targets = targets.to(device, non_blocking=True)
        with autocast(device.type, autocast_dtype):
            logits = model(images)
        logits = logits.float().to(device)  # onnxruntime and OpenVINO engines return CPU logits
        count += images.shape[0]
        if multilabel:
            loss_sum += F.binary_cross_entropy_with_logits(logits, targets.float(), reduction="sum").double() / logits.shape[1]
            all_scores.append(logits.sigmoid().cpu())
            all_targets.append(targets.float().cpu())
        else:
            loss_sum += F.cross_entropy(logits, targets, reduction="sum").double()
            correct += topk_correct(logits, targets, ks)
            if logits.shape[1] == 2:
                all_scores.append(logits.softmax(1)[:, 1].cpu())
                all_targets.append(targets.cpu())
    total = int(all_reduce_sum(count))
    if total == 0:
        raise ValueError("the evaluation set is empty")
    result: dict[str, Any] = {"examples": total, "loss": float(all_reduce_sum(loss_sum)) / total}
    if isinstance(loader, CheckedLoader) and loader.record.policy == "skip":
        result["bad_images"] = len(loader.record.gather())
    if not multilabel:
        correct = all_reduce_sum(correct)
        for k, c in zip(ks, correct.tolist(), strict=True):
            result[f"top{k}"] = c / total
            result[f"correct{k}"] = int(c)
        if all_scores:
            scores = all_gather_rows(torch.cat(all_scores)[:, None].to(device))[:, 0].cpu()
            labels = all_gather_rows(torch.cat(all_targets)[:, None].to(device))[:, 0].cpu()
            if torch.isfinite(scores).all():  # a diverged model's NaN logits rank nothing; its loss says so
                result.update({k: v for k, v in binary_metrics(scores, labels).items()
                               if k in ("roc_auc", "eer", "average_precision")})
            else:
                result.update(roc_auc=math.nan, eer=math.nan, average_precision=math.nan)
            if keep_scores:
                result["scores"], result["labels"] = scores, labels
        return result
    num_classes = all_scores[0].shape[1] if all_scores else 0
    scores = all_gather_rows(torch.cat(all_scores).to(device) if all_scores else torch.zeros(0, num_classes, device=device)).cpu()
    targets = all_gather_rows(torch.cat(all_targets).to(device) if all_targets else torch.zeros(0, num_classes, device=device)).cpu()
    result["map"] = float(mean_average_precision(scores, targets))
    result["map_at_100"] = float(map_at_k(scores, targets, k=100, class_weights=class_weights))
    result["per_class_ap"] = [float(x) for x in average_precision(scores, targets)]
    return result


def evaluate_weights(
    weights: str, *, source: str | None, data_path: str | None, batch_size: int, device: str | None,
    precision: str | None, bad_images: BadImagePolicy, bad_image_fraction: float, model_name: str | None = None,
    ground_truth: str | None = None, progress: bool = False, runtime: str | None = None,
    group_pattern: str | None = None, group_manifest: str | None = None, group_column: str | None = None,
) -> dict[str, Any]:
    """Evaluate weights on the validation split of their data (or of `source` at `data_path`), with
    this process's exact shard under torchrun; unreadable images stop it or are left out and counted
    (`bad_images`, see `xception.data.bad_images`). `weights` is a file from training or `xception
    convert`, or published weights by name ("imagenet", of `model_name`), whose data is the ImageNet
    validation set (`xception.data.imagenet`, labels from `ground_truth` for a flat folder).
    Runs in `runtime` (default: the fastest installed for the device, `xception.deploy.choice`).
    Adds `seconds` (the wall time of the pass), `images_per_second` and `runtime` (the engine's
    settings in words) to `evaluate`'s metrics. A two-class model grouped by `group_pattern` (a regular
    expression on each image's path, its first group names the group, e.g. a video) or by
    `group_column` of `group_manifest` adds `binary`: `binary_report`'s per-image and per-group
    ROC-AUC, EER and average precision (one process)."""
    from xception.data import build_datasets
    from xception.data.config import recorded_data_config
    from xception.data.imagenet import open_imagenet_val
    from xception.data.loader import build_loader, default_num_workers
    from xception.data.summary import split_size
    from xception.deploy.choice import choose_runtime
    from xception.deploy.trained import trained_engine, weights_timings
    from xception.distributed import init_distributed
    from xception.models.trained import load_trained_model

    context = init_distributed(device)
    model, description = load_trained_model(weights, model_name=model_name)
    config = recorded_data_config(description, source=source, path=data_path, ground_truth=ground_truth)
    if config.source == "imagenet" and not config.path:
        raise ValueError(f"{weights} are evaluated on the ImageNet validation set; give its folder with --data")
    if config.source == "imagenet":
        val, num_classes, multilabel, class_weights = open_imagenet_val(config), 1000, False, None
    else:
        datasets = build_datasets(config)
        val, num_classes = datasets.val, datasets.num_classes
        multilabel, class_weights = datasets.multilabel, datasets.class_weights
    if num_classes != description.num_classes:
        raise ValueError(f"{weights} has {description.num_classes} classes but the data set has {num_classes}")
    # Batches: the throughput at this batch size decides (`xception bench --choose` measures it).
    timings = (weights_timings(model, description, batch_size=batch_size)
               if context.device.type == "cpu" and runtime is None else None)
    choice = choose_runtime(context.device, runtime=runtime, precision=precision, timings=timings,
                            decide="throughput")
    engine, choice = trained_engine(model, description, choice, device=context.device, data_path=data_path)
    loader = build_loader(val, batch_size=batch_size, training=False, rank=context.rank,
                          world_size=context.world_size, seed=0, num_workers=default_num_workers(context.world_size),
                          pin_memory=context.device.type == "cuda",
                          bad_images=BadImageRecord(bad_images, split="validation", split_size=split_size(val),
                                                    max_fraction=bad_image_fraction))
    start = time.perf_counter()
    if description.task == "segmentation":
        from xception.eval.segmentation import evaluate_segmentation

        metrics = evaluate_segmentation(engine, loader, device=context.device, num_classes=num_classes)
    else:
        grouped = group_pattern is not None or group_manifest is not None
        if grouped and (num_classes != 2 or context.world_size != 1):
            raise ValueError("grouped detection metrics need a two-class model, evaluated in one process")
        metrics = evaluate(engine, loader, device=context.device, multilabel=multilabel,
                           class_weights=class_weights, progress=progress and context.is_main, keep_scores=grouped)
        if grouped:
            from xception.data.split_manifest import split_files
            from xception.eval.binary_report import binary_report

            metrics["binary"] = binary_report(metrics.pop("scores"), metrics.pop("labels"), split_files(val),
                                              pattern=group_pattern, manifest=group_manifest, column=group_column)
    seconds = time.perf_counter() - start
    return {**metrics, "seconds": seconds, "images_per_second": metrics["examples"] / seconds,
            "runtime": f"{engine.description} ({choice.reason})"}
