"""`evaluate_weights`: a weight file evaluated on the validation split of its data (or another), in
the fastest runtime, on one process or many, by the evaluation of its task (`xception.tasks`)."""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xception.data.bad_images import BadImageRecord
from xception.data.config import BadImagePolicy
from xception.tasks import get_task
from xception.tta_names import TTA

if TYPE_CHECKING:
    import torch
    from torch.utils.data import Dataset

    from xception.description import WeightsDescription


def evaluate_weights(
    weights: str | Sequence[str], *, source: str | None, data_path: str | None, batch_size: int, device: str | None,
    precision: str | None, bad_images: BadImagePolicy, bad_image_fraction: float, model_name: str | None = None,
    ground_truth: str | None = None, progress: bool = False, runtime: str | None = None,
    group_pattern: str | None = None, group_manifest: str | None = None, group_column: str | None = None,
    split: str | None = None, keep_logits: bool = False, reliability: str | None = None, tta: TTA = "none",
) -> dict[str, Any]:
    """Evaluate weights on the validation split of their data (or of `source` at `data_path`; every
    image of the folder `data_path` with `split="all"`, see `evaluation_split`), with
    this process's exact shard under torchrun; unreadable images stop it or are left out and counted
    (`bad_images`, see `xception.data.bad_images`). `weights` is a file from training or `xception
    convert`, or published weights by name ("imagenet", of `model_name`), whose data is the ImageNet
    validation set (`xception.data.imagenet`, labels from `ground_truth` for a flat folder).
    Runs in `runtime` (default: the fastest installed for the device, `xception.deploy.choice`).
    Adds `seconds` (the wall time of the pass), `images_per_second` and `runtime` (the engine's
    settings in words) to the metrics of the weights' task (`xception.tasks`: top-1/top-5, MAP or mean
    IoU). A two-class classifier grouped by `group_pattern` (a regular
    expression on each image's path, its first group names the group, e.g. a video) or by
    `group_column` of `group_manifest` adds `binary`: `binary_report`'s per-image and per-group
    ROC-AUC, EER and average precision (one process).

    A classifier's metrics include its calibration (`ece`, and with the weights' decision policy,
    which the evaluation applies: `decision`, the policy in words, `temperature`, `ece_calibrated`,
    `nll_calibrated`, a two-class model's accuracy, precision, recall and F1 at its `threshold`); `reliability` names a PNG to
    write the reliability diagram to. `keep_logits` adds `logits` (N, C) and `targets` (for
    `xception calibrate`). Several `weights`, or an ensemble file, are an ensemble
    (`xception.inference.ensemble`): the mean of the members' calibrated probabilities, which must
    name the same classes; each member gets the images prepared as its weights were evaluated; it
    decides by its file's policy, else by argmax. `tta`: a classifier's probabilities are the mean of
    each image's views' (`xception.tasks.tta`); `images_per_second` counts images, not views."""
    from xception.data.loader import build_loader, default_num_workers
    from xception.data.summary import split_size
    from xception.distributed import init_distributed
    from xception.inference.ensemble import Ensemble, PackedInputs, is_ensemble_file
    from xception.inference.session import InferenceSession

    context = init_distributed(device)
    members = [weights] if isinstance(weights, str) else list(weights)
    # Batches: the throughput at this batch size decides (`xception bench --choose` measures it).
    options = dict(model_name=model_name, runtime=runtime, precision=precision, device=context.device,
                   workload="throughput", batch_size=batch_size, data_path=data_path)
    ensemble = None
    if len(members) > 1 or is_ensemble_file(members[0]):
        ensemble = Ensemble.open(members, **options)
        session, weights = ensemble.members[0], members[0]
    else:
        session, weights = InferenceSession.open(members[0], require_class_names=False, **options), members[0]
    description = session.description
    where = dict(source=source, data_path=data_path, split=split, ground_truth=ground_truth)
    val, num_classes, multilabel, class_weights = _evaluation_data(weights, description, **where)
    if ensemble is not None and not ensemble.same_preparation():
        # Each member sees the images as its own weights were evaluated, packed into one row per image.
        others = [_evaluation_data(m.weights, m.description, **where)[0] for m in ensemble.members[1:]]
        val = PackedInputs(ensemble, [val, *others])
    if num_classes != description.num_classes:
        raise ValueError(f"{weights} has {description.num_classes} classes but the data set has {num_classes}")
    # An ensemble's logits are those of its members' mean calibrated probabilities (their own temperatures and
    # views inside), before the ensemble's temperature, which `evaluate` applies as a model's.
    engine = session.engine if ensemble is None else functools.partial(ensemble.mean_logits, tta=tta)
    decision = description.decision if ensemble is None else ensemble.decision
    loader = build_loader(val, batch_size=batch_size, training=False, rank=context.rank,
                          world_size=context.world_size, seed=0, num_workers=default_num_workers(context.world_size),
                          pin_memory=context.device.type == "cuda",
                          bad_images=BadImageRecord(bad_images, split="validation", split_size=split_size(val),
                                                    max_fraction=bad_image_fraction))
    grouped = group_pattern is not None or group_manifest is not None
    if grouped and (num_classes != 2 or context.world_size != 1):
        raise ValueError("grouped detection metrics need a two-class model, evaluated in one process")
    start = time.perf_counter()
    classifier = description.task == "classification"
    policy = {"decision": decision, "keep_logits": keep_logits, "tta": tta} if classifier else {}
    if ensemble is not None:  # the members' views are taken inside
        policy.update(tta="none")
    if tta != "none" and not classifier:
        raise ValueError(f"--tta {tta} is for classifiers; {weights} holds a {description.task} model")
    metrics = get_task(description.task).evaluate(
        engine, loader, device=context.device, num_classes=num_classes, multilabel=multilabel,
        class_weights=class_weights, progress=progress and context.is_main, keep_scores=grouped, **policy)
    if classifier and decision is not None:
        metrics["decision"] = decision.reason()  # e.g. "threshold 0.37 (EER on 40 validation images)"
    bins = metrics.pop("calibration_bins", None)
    if reliability is not None and bins is not None and context.is_main:
        from xception.tasks.reliability_figure import save_reliability_diagram

        save_reliability_diagram(reliability, bins, title=f"{Path(str(weights)).name}: {metrics['examples']} images")
    if grouped:
        from xception.data.split_manifest import split_files
        from xception.eval.binary_report import binary_report

        metrics["binary"] = binary_report(metrics.pop("scores"), metrics.pop("labels"), split_files(val),
                                          pattern=group_pattern, manifest=group_manifest, column=group_column)
    seconds = time.perf_counter() - start
    runtime_text = (ensemble or session).runtime_text()
    return {**metrics, "seconds": seconds, "images_per_second": metrics["examples"] / seconds,
            "runtime": runtime_text}


def _evaluation_data(weights: Any, description: WeightsDescription, *, source: str | None, data_path: str | None,
                     split: str | None, ground_truth: str | None) -> tuple[Dataset, int, bool, torch.Tensor | None]:
    """The images `weights` are evaluated on, prepared as they were evaluated: (the data set, the
    number of classes, multi-label, MAP's class weights)."""
    from xception.data import build_datasets
    from xception.data.build import build_whole_folder
    from xception.data.config import recorded_data_config
    from xception.data.imagenet import open_imagenet_val

    config = recorded_data_config(description, source=source, path=data_path, ground_truth=ground_truth)
    if config.source == "imagenet" and not config.path:
        raise ValueError(f"{weights} are evaluated on the ImageNet validation set; give its folder with --data")
    if config.source == "imagenet":
        return open_imagenet_val(config), 1000, False, None
    whole = evaluation_split(description, config.source, data_path, split) == "all"
    datasets = build_whole_folder(config) if whole else build_datasets(config)
    trained_classes = list(description.class_names or datasets.class_names)
    if whole and config.source == "imagefolder" and datasets.class_names != trained_classes:
        raise ValueError(f"{data_path} has the class folders {datasets.class_names[:10]}, the weights the classes "
                         f"{trained_classes[:10]}: name the test folder's classes as in training")
    return datasets.val, datasets.num_classes, datasets.multilabel, datasets.class_weights


def evaluation_split(description: Any, source: str, data_path: str | None, split: str | None) -> str:
    """"val" (the validation split of the data) or "all" (every image of the folder `data_path`).

    `split` None means "val", except where it would be a silent surprise: weights trained with
    `--val-split F` on one folder of the user's files (`source` "imagefolder" or "segfolder") and
    pointed at another folder. The held-out F of a folder exists only for the folder it was cut
    from, so that case asks for --split. (The mosaics' `val_split` cuts Fashion-MNIST's training
    items wherever its files are.) And "all" on the training folder itself would score the
    training images, so that is refused."""
    recorded = description.data or {}
    fraction, trained_on = recorded.get("val_split"), recorded.get("path")
    same = data_path is None or (trained_on is not None and Path(data_path).resolve() == Path(trained_on).resolve())
    if split == "all":
        if data_path is None:
            raise ValueError("--split all evaluates every image of the folder given with --data; give --data DIR")
        if same and fraction is not None:
            raise ValueError(f"{data_path} is the folder these weights were trained on (all of it but the "
                             f"--val-split {fraction} held out): --split all would score training images; "
                             "leave out --split to evaluate the held-out part")
        return "all"
    if split is None and fraction is not None and not same and source in ("imagefolder", "segfolder"):
        raise ValueError(f"these weights were trained on {trained_on} with --val-split {fraction}, and {data_path} is "
                         f"another folder: give --split all to evaluate every image of {data_path} (a test folder), "
                         f"or --split val to evaluate its held-out {fraction} (the same data moved)")
    return "val"
