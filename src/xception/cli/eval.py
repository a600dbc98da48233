"""`xception eval`: evaluate trained weights on a data set's validation split, or a whole test folder."""

from __future__ import annotations

import argparse

from xception.cli.train import add_bad_image_options
from xception.data.sources import SOURCES


def add_parser(subparsers) -> None:
    from xception.cli.video import add_video_eval_options
    from xception.cli.weights import add_weights_options
    from xception.deploy.runtime_names import RUNTIMES
    from xception.precisions import PRECISIONS
    from xception.tta_names import TTA_CHOICES, TTA_HELP

    parser = subparsers.add_parser(
        "eval",
        help="evaluate weights on a validation set (top-1/top-5, ROC-AUC, ECE; mAP and MAP@100; mean IoU)",
        description="Evaluate a weight file written by training on the validation split of the "
        "data it was trained on (or another given with --dataset/--data; every image of a test folder "
        "with --data DIR --split all). Under torchrun the "
        "examples are split exactly over the processes. Published weights (--weights imagenet) are "
        "evaluated on the ImageNet validation folder given with --data (docs/weights.md). Weights with a "
        "decision policy (a temperature and a threshold, `xception calibrate`) are evaluated as they decide: "
        "accuracy, precision, recall and F1 at their threshold, ECE and NLL before and after the temperature.",
    )
    add_weights_options(parser, ensemble=True)
    parser.add_argument("--dataset", choices=SOURCES)
    parser.add_argument("--data", help="the dataset's directory (default: the one in the weights' metadata)")
    parser.add_argument("--split", choices=("val", "all"),
                        help="val (default): the data's validation split (the held-out fraction for weights "
                        "trained with --val-split); all: every image of the folder --data names, a test folder "
                        "laid out as in training (class folders, or images/ and masks/)")
    parser.add_argument("--ground-truth", help="ImageNet labels file of a flat validation folder (default: found "
                        "beside it: ILSVRC2012_validation_ground_truth.txt, LOC_val_solution.csv, ...)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", help="cpu or cuda (default: a GPU when there is one)")
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="default: the fastest for the device and runtime; int8 quantizes after calibrating "
                        "on a few hundred of the weights' training images")
    parser.add_argument("--tta", choices=TTA_CHOICES, default="none",
                        help=TTA_HELP)
    parser.add_argument("--runtime", choices=RUNTIMES,
                        help="default: on a CPU the highest throughput at --batch-size measured by `xception bench "
                        "--choose` (cached per machine), else a preference; printed with the metrics")
    add_bad_image_options(parser, training=False)
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.add_argument("--group-pattern", metavar="REGEX",
                        help="two classes: also score groups of images (the frames of one video), the group of an "
                        "image being the first capture group of REGEX in its path, e.g. '(video_\\d+)_frame'; a "
                        "group's score is the mean probability of its images (DeepfakeBench's video-level score)")
    parser.add_argument("--group-manifest", metavar="FILE", help="group by a column of this CSV (with a header) or "
                        "JSONL manifest instead, named by --group-column; its `path` column holds the image files")
    parser.add_argument("--group-column", metavar="NAME")
    parser.add_argument("--group", metavar="COLUMN", help="the same with the manifest `xception data frames` wrote in "
                        "--data: --group video scores each video (DATA/frames.csv's COLUMN)")
    parser.add_argument("--reliability", metavar="PNG", help="a classifier: write its reliability diagram (accuracy "
                        "against confidence in 15 bins, before and after the weights' temperature) to this file")
    add_video_eval_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    # Several --weights: an ensemble (evaluate_weights takes the list); one: the file, as every path reads it.
    args.weights = args.weights[0] if len(args.weights) == 1 else args.weights

    from xception.cli.video import evaluate_videos_of
    from xception.eval.evaluate import evaluate_weights

    if args.group:  # the manifest of `xception data frames` in --data
        if not args.data:
            raise ValueError("--group reads DATA/frames.csv: give --data, the folder `xception data frames` wrote")
        args.group_manifest, args.group_column = str(Path(args.data) / "frames.csv"), args.group
    if args.videos:  # scored as `predict` scores them: frames, faces, one score per video
        metrics = evaluate_videos_of(args)
    else:
        metrics = evaluate_weights(args.weights, source=args.dataset, data_path=args.data, batch_size=args.batch_size,
                                   device=args.device, precision=args.precision, runtime=args.runtime,
                                   bad_images=args.bad_images,
                                   bad_image_fraction=args.bad_image_fraction, model_name=args.model,
                                   ground_truth=args.ground_truth, progress=True, group_pattern=args.group_pattern,
                                   group_manifest=args.group_manifest, group_column=args.group_column,
                                   split=args.split, reliability=args.reliability, tta=args.tta)
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        for key, value in metrics.items():
            if key == "binary":
                for level in ("frame", "group"):
                    shown = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                      for k, v in (value[level] or {}).items())
                    print(f"{'per ' + level:12} {shown}" + (f" ({value['grouped_by']})" if level == "group" else ""))
            elif key not in ("per_class_ap", "per_class_iou"):
                print(f"{key:12} {value:.6g}" if isinstance(value, float) else f"{key:12} {value}")
    return 0
