"""`xception train`: a training run from flags, a config file and key=value overrides."""

from __future__ import annotations

import argparse

from xception.data.config import CLASS_WEIGHTINGS, RESIZES, SAMPLERS
from xception.data.sources import SOURCES
from xception.tracker_names import TRACKERS


def add_parser(subparsers) -> None:
    from xception.precisions import TRAINING_PRECISIONS
    parser = subparsers.add_parser(
        "train",
        help="train a model with one of the paper's recipes",
        description="Train a registered model. Settings come from, in order: the defaults of "
        "TrainConfig and the recipe, --config FILE (JSON or TOML), the flags below, then --set "
        "key=value overrides. Under torchrun, every process runs this same command.",
        epilog="Examples: xception train --model xception --recipe paper_imagenet --dataset imagefolder "
        "--data /data/imagenet --batch-size 256 ; xception train --resume runs/train ; "
        "--set recipe.lr=0.01 --set model.width=0.5 --set data.crop_padding=4",
    )
    parser.add_argument("--config", help="a .json or .toml file of TrainConfig fields")
    parser.add_argument("--task", choices=("classification", "segmentation"),
                        help="the task follows the model; segmentation without --model trains deeplabv3plus_small "
                        "(per-pixel labels, mean IoU, masks.png; recipe mosaic_segmentation and dataset mosaic_masks "
                        "unless given)")
    parser.add_argument("--model", help="a registered model (see `xception models`); default xception")
    parser.add_argument("--recipe", help="paper_imagenet, paper_jft, fashion_mnist_demo, fashion_mnist_long, "
                        "mosaic_segmentation, finetune, finetune_whole or linear_probe (docs/training.md, "
                        "docs/finetune.md)")
    parser.add_argument("--weights", dest="init_weights", metavar="NAME|FILE",
                        help="start from these weights: published ones by name (imagenet), the official Keras .h5, "
                        "a timm/Cadene .pth, a .safetensors of this project or a run's checkpoint. The body loads "
                        "exactly; the head is new when the data's classes differ. Fine-tuning: --recipe finetune")
    parser.add_argument("--freeze-epochs", type=float, metavar="E",
                        help="train only the head for the first E epochs (recipe.head_epochs; E >= the budget is "
                        "a linear probe), then the whole network")
    parser.add_argument("--batchnorm", choices=("frozen", "train"),
                        help="frozen: BatchNorm in inference mode with its scale and offset fixed (Keras' rule for "
                        "fine-tuning; recipe.batchnorm)")
    parser.add_argument("--dataset", choices=SOURCES,
                        help="the data source (default fashion_mnist when --data is not given, else imagefolder)")
    parser.add_argument("--data", help="the dataset's directory")
    parser.add_argument("--download", action="store_true", help="download Fashion-MNIST if it is not found")
    parser.add_argument("--image-size", type=int, help="input side in pixels (default: the model's)")
    parser.add_argument("--in-channels", type=int, choices=(1, 3))
    parser.add_argument("--val-split", type=float,
                        help="hold out this fraction of each class of --data (one folder of class folders, or a "
                        "segfolder without split lists) for validation, seeded by --seed; for the mosaic sources, of "
                        "Fashion-MNIST's training items (the validation mosaics tile those, not the test images)")
    parser.add_argument("--group", metavar="COLUMN", help="with --val-split on an image folder: hold out whole groups, "
                        "the group of each image being its COLUMN in DATA/frames.csv (`xception data frames` writes "
                        "it: --group video keeps each video's frames on one side)")
    parser.add_argument("--resize", choices=RESIZES,
                        help="crop (the Inception crop; the default) or squash (the whole image to the square, "
                        "aspect ratio not kept, as FaceForensics++ prepares faces)")
    parser.add_argument("--sampler", choices=SAMPLERS,
                        help="shuffle (the default) or balanced (every class equally often in expectation)")
    parser.add_argument("--class-weighting", choices=CLASS_WEIGHTINGS,
                        help="none (the default) or inverse_frequency (loss weights N / (C n_c))")
    parser.add_argument("--epochs", type=float)
    parser.add_argument("--steps", type=int, help="budget in optimizer steps (overrides --epochs)")
    parser.add_argument("--batch-size", type=int, help="global batch per optimizer step, all processes together")
    parser.add_argument("--accumulation-steps", type=int)
    parser.add_argument("--precision", choices=TRAINING_PRECISIONS, help="default: the fastest for the device")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: this rank's GPU when there is one)")
    parser.add_argument("--threads", type=int, dest="cpu_threads", help="torch CPU threads (default: torch's)")
    parser.add_argument("--sync-batchnorm", action="store_true", default=None)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--workers", type=int, dest="num_workers", help="DataLoader workers per process")
    parser.add_argument("--out", dest="out_dir", help="the run directory (default runs/train)")
    parser.add_argument("--resume", help="a checkpoint or run directory to continue: its config is the starting "
                        "point, and the run continues in that directory unless --out names another one (then "
                        "it is only read). A --out directory with a checkpoint continues by itself")
    parser.add_argument("--restart", action="store_true", default=None,
                        help="start over in --out: delete the checkpoints, metrics and weights already there")
    parser.add_argument("--evals-per-epoch", type=int)
    parser.add_argument("--no-progress", dest="progress", action="store_false", default=None)
    add_tracker_option(parser)
    add_bad_image_options(parser, training=True)
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                        help="override any field: epochs=3, recipe.lr=0.01, model.width=0.5, data.seed=1")
    parser.set_defaults(run=run)


def add_tracker_option(parser: argparse.ArgumentParser, *, default: str = "tensorboard") -> None:
    """--tracker, repeatable; unset, a config file or the checkpoint being resumed decides (`default`)."""
    parser.add_argument("--tracker", dest="trackers", action="append", choices=TRACKERS, default=None,
                        help=f"where each run is logged besides metrics.jsonl, once per tracker (default {default}; "
                        "mlflow: MLFLOW_TRACKING_URI, wandb: WANDB_MODE/WANDB_PROJECT; pip install 'xception[track]'). "
                        "A continued run continues the same tracker runs (docs/training.md, Tracking)")


def add_bad_image_options(parser: argparse.ArgumentParser, *, training: bool) -> None:
    """--bad-images and --bad-image-fraction. Training leaves them unset, so that a config file or
    the checkpoint being resumed decides unless they are given."""
    from xception.data.config import BAD_IMAGE_POLICIES, DEFAULT_BAD_IMAGES, MAX_BAD_FRACTION

    parser.add_argument("--bad-images", choices=BAD_IMAGE_POLICIES, default=None if training else DEFAULT_BAD_IMAGES,
                        help="unreadable image files: stop at the first (error, the default) or leave them out, "
                        "each logged once and counted in the metrics (skip)")
    parser.add_argument("--bad-image-fraction", type=float, default=None if training else MAX_BAD_FRACTION,
                        help=f"skip stops when more of a split than this is unreadable (default {MAX_BAD_FRACTION})")


_FLAGS = ("model", "init_weights", "recipe", "epochs", "steps", "batch_size", "accumulation_steps", "precision", "channels_last",
          "compile", "device", "cpu_threads", "sync_batchnorm", "seed", "num_workers", "out_dir", "evals_per_epoch", "progress",
          "bad_images", "bad_image_fraction", "restart", "trackers")


def build_config(args: argparse.Namespace):
    """The TrainConfig that `args` describe (checked, nothing built)."""
    from xception.train import TrainConfig
    from xception.train.checkpoint import read_summary
    from xception.train.config import resolve_train_values
    from xception.train.overrides import apply_overrides, load_config_file
    from xception.train.run_directory import RunDirectory

    if args.resume:
        values = read_summary(args.resume)["config"]
        # Where the checkpoint is, not where its run once was: resuming a copy must not write to the original.
        # and a stop that ended that process is not a stop for this one.
        values.update(resume=args.resume, out_dir=str(RunDirectory.of(args.resume).path), restart=False,
                      stop_after_steps=None)
    else:
        values = load_config_file(args.config) if args.config else {}
    for name in _FLAGS:
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    data = dict(values.get("data") or {})
    if args.dataset:
        data["source"] = args.dataset
    elif args.data and "source" not in data:
        data["source"] = "imagefolder"
    for field, value in (("path", args.data), ("image_size", args.image_size), ("in_channels", args.in_channels),
                         ("val_split", args.val_split), ("val_group", args.group), ("resize", args.resize),
                         ("sampler", args.sampler),
                         ("class_weighting", args.class_weighting)):
        if value is not None:
            data[field] = value
    if args.download:
        data["download"] = True
    data.setdefault("path", None)
    recipe = dict(values.get("recipe_overrides") or {})
    for field, value in (("head_epochs", args.freeze_epochs), ("batchnorm", args.batchnorm)):
        if value is not None:
            recipe[field] = value
    values = resolve_train_values({**values, "data": data, "recipe_overrides": recipe}, task=args.task)
    values["data"].setdefault("source", "fashion_mnist")
    values = apply_overrides(values, args.assignments)
    config = TrainConfig.from_dict(values)
    config.check()
    return config


def run(args: argparse.Namespace) -> int:
    import os

    from xception.train import fit
    from xception.train.preemption import exit_status

    result = fit(build_config(args))
    status = 0 if result.finished else exit_status(result.attempts[-1].get("stopped_by"))
    if os.environ.get("RANK", "0") != "0":
        return status  # under torchrun, rank 0 reports
    if not result.finished:
        print(f"stopped at step {result.steps} of {result.total_steps}; the same command continues it "
              f"(checkpoint {result.checkpoint})")
        return status
    shown = ", ".join(f"{k} {v:.4f}" for k, v in result.metrics.items() if k != "examples" and isinstance(v, float))
    attempts = f" over {len(result.attempts)} attempts" if len(result.attempts) > 1 else ""
    print(f"trained {result.steps} steps in {result.wall_s:.0f} s{attempts}: {shown}")
    print(f"run directory: {result.run_dir} (checkpoint {result.checkpoint}, weights {result.weights})")
    return 0
