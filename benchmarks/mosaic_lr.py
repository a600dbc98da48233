"""The segmentation preset's learning rate, chosen on validation mosaics, then measured once on the test mosaics.

Trains the preset (configs/mosaic_segmentation.toml: deeplabv3plus_small, recipe mosaic_segmentation,
6,000 training mosaics x 2 epochs at batch 16) once per learning rate (and seed) with `data.val_split`
of Fashion-MNIST's training items held out: the training mosaics tile the rest, the preset's 2,000
validation mosaics tile only the held-out items, so the mean IoU that picks the rate never saw a test
image. The rate with the best validation mean IoU (averaged over seeds) is chosen; only then are its
weights evaluated on the test mosaics (Fashion-MNIST's test images, the preset's data without
val_split), once. Writes OUT/mosaic_lr.md (the table, the command, the machine) and OUT/mosaic_lr.json.

    nice -n 10 .venv/bin/python benchmarks/mosaic_lr.py                         # 4 rates, ~40 min on 2 cores
    .venv/bin/python benchmarks/mosaic_lr.py --smoke --out /tmp/mosaic_lr       # the code path, ~2 min
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "mosaic_segmentation.toml"), help="the preset")
    parser.add_argument("--lrs", type=float, nargs="+", default=[0.2, 0.4, 0.8, 1.6],
                        help="recipe learning rates (at the recipe's reference batch 128; scaled to the batch)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (init and order) per rate")
    parser.add_argument("--val-split", type=float, default=0.1, help="fraction of the training items held out")
    parser.add_argument("--train-size", type=int, help="training mosaics (default: the preset's)")
    parser.add_argument("--val-size", type=int, help="validation and test mosaics (default: the preset's)")
    parser.add_argument("--epochs", type=float, help="default: the recipe's")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--run-dir", help="one training run per rate and seed under it (default: runs/mosaic_lr, "
                        "runs/mosaic_lr_smoke with --smoke); a run found there is continued from its checkpoint, "
                        "a finished one only evaluated again")
    parser.add_argument("--restart", action="store_true", help="train every run from scratch")
    parser.add_argument("--smoke", action="store_true", help="200 mosaics, 1 epoch, 2 rates: the code path only")
    args = parser.parse_args(argv)
    if args.smoke:
        args.train_size, args.val_size, args.epochs, args.lrs = 200, 100, 1.0, args.lrs[:2]
    args.run_dir = args.run_dir or str(ROOT / "runs" / ("mosaic_lr_smoke" if args.smoke else "mosaic_lr"))
    return args


def train_config(args: argparse.Namespace, *, lr: float, seed: int):
    """The preset with the sweep's changes: val_split, the rate, the seed, a run directory of its own."""
    from xception.train.config import TrainConfig, resolve_train_values
    from xception.train.overrides import load_config_file

    values = load_config_file(args.config)
    data = {"path": None, **values["data"], "val_split": args.val_split}
    if args.train_size is not None:
        data["mosaic_train_size"] = args.train_size
    if args.val_size is not None:
        data["mosaic_val_size"] = args.val_size
    values.update(data=data, recipe_overrides={**values.get("recipe_overrides", {}), "lr": lr}, seed=seed,
                  out_dir=str(Path(args.run_dir) / f"lr{lr:g}_seed{seed}"), restart=args.restart,
                  trackers=())
    if args.epochs is not None:
        values["epochs"] = args.epochs
    return TrainConfig.from_dict(resolve_train_values(values))


def test_metrics(weights: Path, run_dir: Path) -> dict[str, Any]:
    """Mean IoU of `weights` on the test mosaics: the data they record with val_split removed, evaluated
    with the precision and layout the run validated with (its config.json)."""
    from xception.data import build_datasets
    from xception.data.config import recorded_data_config
    from xception.data.loader import build_loader
    from xception.models.trained import open_weights
    from xception.runtime import autocast_dtype
    from xception.tasks.segmentation import evaluate_segmentation

    model, _, description = open_weights(weights)
    data = dataclasses.replace(recorded_data_config(description), val_split=None)
    datasets = build_datasets(data)
    runtime = json.loads((run_dir / "config.json").read_text())["runtime"]
    loader = build_loader(datasets.val, batch_size=64, training=False, rank=0, world_size=1, seed=0, num_workers=0,
                          pin_memory=False)
    if runtime["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    metrics = evaluate_segmentation(model, loader, device=torch.device("cpu"), num_classes=datasets.num_classes,
                                    autocast_dtype=autocast_dtype(runtime["precision"]),
                                    channels_last=runtime["channels_last"])
    return {"miou": metrics["miou"], "pixel_accuracy": metrics["pixel_accuracy"], "examples": metrics["examples"],
            "source_items": len(datasets.val.mosaics.source)}


def train_run(args: argparse.Namespace, *, lr: float, seed: int) -> dict[str, Any]:
    """One training run of the sweep and its validation metrics ("val_miou" None when it diverged)."""
    from xception.train.fit import DivergedError, fit

    config = train_config(args, lr=lr, seed=seed)
    print(f"[mosaic_lr] lr {lr:g}, seed {seed}: training {config.data.mosaic_train_size} mosaics "
          f"(val_split {config.data.val_split}) -> {config.out_dir}", flush=True)
    start = time.perf_counter()
    try:
        result = fit(config)
    except DivergedError as error:
        print(f"[mosaic_lr] lr {lr:g}, seed {seed}: diverged: {error}", flush=True)
        return {"lr": lr, "seed": seed, "val_miou": None, "diverged": str(error), "trained_here": True,
                "seconds": round(time.perf_counter() - start, 1)}
    trained = [a for a in result.attempts if a["to_step"] > a["from_step"]]
    run = {"lr": lr, "seed": seed, "val_miou": float(result.metrics["miou"]),
           "val_pixel_accuracy": float(result.metrics["pixel_accuracy"]),
           "val_examples": int(result.metrics["examples"]), "steps": result.steps,
           "train_s": round(sum(a["wall_s"] for a in trained), 1), "seconds": round(time.perf_counter() - start, 1),
           # False: a finished run found in the run directory, only evaluated again here.
           "trained_here": bool(trained) and trained[-1] is result.attempts[-1],
           "run_dir": str(result.run_dir), "weights": str(result.weights)}
    print(f"[mosaic_lr] lr {lr:g}, seed {seed}: validation mean IoU {run['val_miou']:.4f} ({run['seconds']:.0f} s)",
          flush=True)
    return run


def choose(runs: list[dict[str, Any]], lrs: list[float]) -> tuple[float, dict[float, float | None]]:
    """The rate with the best validation mean IoU averaged over its seeds, and every rate's mean
    (None for a rate with a diverged run: it cannot be chosen)."""
    by_lr: dict[float, float | None] = {}
    for lr in lrs:
        scores = [r["val_miou"] for r in runs if r["lr"] == lr]
        by_lr[lr] = statistics.mean(scores) if None not in scores else None
    candidates = {lr: score for lr, score in by_lr.items() if score is not None}
    if not candidates:
        raise RuntimeError("every learning rate diverged: nothing to choose")
    return max(candidates, key=candidates.get), by_lr


def main(argv: list[str] | None = None) -> int:
    from xception.train.provenance import git_commit
    from xception.train.recipes import get_recipe

    args = parse_args(argv)
    started = time.perf_counter()
    # Seeds outer: a sweep cut short still has every rate at the seeds it finished.
    runs = [train_run(args, lr=lr, seed=seed) for seed in args.seeds for lr in args.lrs]
    chosen, by_lr = choose(runs, args.lrs)
    print(f"[mosaic_lr] chosen on validation: lr {chosen:g} (mean IoU {by_lr[chosen]:.4f}); now the test mosaics",
          flush=True)
    tests = [{"seed": r["seed"], **test_metrics(Path(r["weights"]), Path(r["run_dir"]))}
             for r in runs if r["lr"] == chosen]
    config = train_config(args, lr=chosen, seed=args.seeds[0])
    results = {
        "date": datetime.date.today().isoformat(), "machine": machine(), "torch": torch.__version__,
        "torch_threads": config.cpu_threads, "commit": git_commit(),
        "command": " ".join(["benchmarks/mosaic_lr.py", *(argv if argv is not None else sys.argv[1:])]),
        "preset": {"config": str(Path(args.config).relative_to(ROOT)) if Path(args.config).is_relative_to(ROOT)
                   else args.config, "model": config.model, "recipe": config.recipe, "batch_size": config.batch_size,
                   "epochs": config.epochs or get_recipe(config.recipe).epochs, "data": dataclasses.asdict(config.data)},
        "runs": runs, "val_miou_by_lr": {f"{lr:g}": by_lr[lr] for lr in args.lrs}, "chosen_lr": chosen,
        "test": tests, "test_miou": statistics.mean(t["miou"] for t in tests),
        "seconds": round(time.perf_counter() - started, 1),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "mosaic_lr.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "mosaic_lr.md").write_text(render(results))
    print((out / "mosaic_lr.md").read_text())
    return 0


def render(results: dict[str, Any]) -> str:
    data = results["preset"]["data"]
    rows = "\n".join(
        f"| {r['lr']:g} | {r['seed']} | diverged | | | | {round(r['seconds'])} |" if r["val_miou"] is None else
        f"| {r['lr']:g} | {r['seed']} | {r['val_miou']:.4f} | {r['val_pixel_accuracy']:.4f} | {r['steps']} | "
        f"{r['train_s']:.0f} | {round(r['seconds']) if r['trained_here'] else 'earlier'} |" for r in results["runs"])
    means = "\n".join(f"| {lr} | {'diverged' if score is None else f'{score:.4f}'} |"
                       for lr, score in results["val_miou_by_lr"].items())
    train_s = sum(r.get("train_s", 0.0) for r in results["runs"])
    tests = "\n".join(f"| {results['chosen_lr']:g} | {t['seed']} | {t['miou']:.4f} | {t['pixel_accuracy']:.4f} | "
                      f"{t['examples']} |" for t in results["test"])
    return f"""# The mosaic segmentation preset's learning rate, chosen on validation

{results['date']}, {results['machine']}, torch {results['torch']}, {results['torch_threads']} thread(s),
commit {results['commit']}; {results['seconds']:.0f} s in this invocation, {train_s:.0f} s of training summed over
the runs (some may come from earlier invocations: "earlier" below).

    nice -n 10 .venv/bin/python {results['command']}

The preset ({results['preset']['config']}: {results['preset']['model']}, recipe {results['preset']['recipe']},
batch {results['preset']['batch_size']}, {data['mosaic_train_size']} training mosaics x {results['preset']['epochs']:g} epochs) with `val_split
{data['val_split']}`: {data['val_split']:.0%} of Fashion-MNIST's training items (stratified, seed
{data['seed']}) held out; the training mosaics tile the rest, the {data['mosaic_val_size']} validation
mosaics only the held-out items. `lr` is the recipe's rate at its reference batch 128 (scaled to the
batch). Seconds: `train_s` the training loop, `s` the whole run (data, training, evaluation; "earlier":
a finished run of an earlier invocation, only evaluated again).

| lr | seed | validation mean IoU | pixel accuracy | steps | train_s | s |
|---:|---:|---:|---:|---:|---:|---:|
{rows}

Per rate, the validation mean IoU averaged over the seeds:

| lr | validation mean IoU |
|---:|---:|
{means}

Chosen on validation: **lr {results['chosen_lr']:g}**. Then, once, its weights on the
{data['mosaic_val_size']} test mosaics (Fashion-MNIST's test images; the recorded data without val_split):

| lr | seed | test mean IoU | pixel accuracy | mosaics |
|---:|---:|---:|---:|---:|
{tests}

Test mean IoU of the chosen rate, averaged over the seeds: **{results['test_miou']:.4f}**.
"""


def machine() -> str:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
