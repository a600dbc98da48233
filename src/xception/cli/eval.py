"""`xception eval`: evaluate trained weights on a data set's validation split."""

from __future__ import annotations

import argparse

from xception.cli.train import add_bad_image_options


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate weights on a validation set (top-1/top-5, or mAP and MAP@100)",
        description="Evaluate a weight file written by training on the validation split of the "
        "data it was trained on (or another given with --dataset/--data). Under torchrun the "
        "examples are split exactly over the processes.",
    )
    parser.add_argument("--weights", required=True, help="a .safetensors file from a training run")
    parser.add_argument("--dataset", choices=("fashion_mnist", "imagefolder", "multilabel", "mosaic", "mosaic_masks",
                                                  "webdataset"))
    parser.add_argument("--data", help="the dataset's directory (default: the one in the weights' metadata)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", help="cpu or cuda (default: a GPU when there is one)")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), help="default: the fastest for the device")
    add_bad_image_options(parser, training=False)
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from xception.eval.evaluate import evaluate_weights

    if not Path(args.weights).is_file():
        raise FileNotFoundError(f"no such weight file: {args.weights}")
    metrics = evaluate_weights(args.weights, source=args.dataset, data_path=args.data, batch_size=args.batch_size,
                               device=args.device, precision=args.precision, bad_images=args.bad_images,
                               bad_image_fraction=args.bad_image_fraction)
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        for key, value in metrics.items():
            if key not in ("per_class_ap", "per_class_iou"):
                print(f"{key:12} {value:.6g}" if isinstance(value, float) else f"{key:12} {value}")
    return 0
