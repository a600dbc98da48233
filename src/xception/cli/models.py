"""`xception models`: the registered models with their parameter counts and MACs."""

from __future__ import annotations

import argparse
import json


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list the registered models",
        description="List every registered model with its trainable parameters (1000 classes, "
        "21 for segmentation models, 3 input channels), BatchNorm statistics and multiply-accumulates at its default input size.",
    )
    parser.add_argument("--format", choices=("table", "json", "markdown"), default="table")
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.set_defaults(run=run)


SEGMENTATION_CLASSES = 21


def run(args: argparse.Namespace) -> int:
    from xception.models import MODELS, create_model
    from xception.models.complexity import count_batchnorm_statistics, count_macs, count_parameters

    rows = []
    for name, entry in sorted(MODELS.items()):
        # Segmentation models are counted with PASCAL VOC's 21 classes: 1000 per-pixel classes at
        # 513 px would be a 1 GB logit map that no one trains.
        num_classes = args.num_classes if entry.task == "classification" else SEGMENTATION_CLASSES
        model = create_model(name, num_classes=num_classes)
        rows.append(
            dict(
                name=name,
                params=count_parameters(model),
                bn_statistics=count_batchnorm_statistics(model),
                input_size=entry.input_size,
                gmacs=round(count_macs(model, entry.input_size) / 1e9, 4),
                description=entry.description,
            )
        )
    if args.format == "json":
        print(json.dumps(rows, indent=2))
    elif args.format == "markdown":
        print("| model | params | BN statistics | input | GMACs | what |")
        print("|---|---:|---:|---:|---:|---|")
        for r in rows:
            print(f"| `{r['name']}` | {r['params']:,} | {r['bn_statistics']:,} | {r['input_size']} | {r['gmacs']} | {r['description']} |")
    else:
        for r in rows:
            print(f"{r['name']:24} {r['params']:>12,} params {r['gmacs']:>8} GMACs @ {r['input_size']} px  {r['description']}")
    return 0
