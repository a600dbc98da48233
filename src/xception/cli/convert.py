"""`xception convert`: any supported weight file -> this project's safetensors format."""

from __future__ import annotations

import argparse
import json


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert Keras / timm / torchvision weights to this project's safetensors format",
        description="Read SRC (the official Keras Xception .h5 files, Keras 3 .weights.h5, timm "
        "legacy_xception or Cadene state dicts, torchvision Inception V3, or our own files), check "
        "that it fits the model, and write DST: safetensors with the model's name and config. SRC may "
        "also name published weights (imagenet), downloaded once into the cache. A file of published "
        "weights gets their ImageNet class names and data preparation, so that predict, eval and "
        "export need nothing else.",
    )
    parser.add_argument("src", help="weight file to read, or published weights by name (imagenet, imagenet_notop)")
    parser.add_argument("dst", help="safetensors file to write")
    parser.add_argument("--model", default="xception", help="registered model name (default: xception)")
    parser.add_argument(
        "--num-classes",
        type=int,
        default=None,
        help="classes of the head (default: from the file; 0 for a body-only 'notop' file)",
    )
    parser.add_argument("--in-channels", type=int, default=3)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from xception.models.convert import convert_weights

    description = convert_weights(
        args.src, args.dst, model_name=args.model, num_classes=args.num_classes, in_channels=args.in_channels
    )
    summary = {"model_name": description.model_name, "num_classes": description.num_classes,
               "in_channels": description.in_channels}
    if "weights" in description.provenance:
        summary["as"] = description.provenance["weights"]["key"]
    print(f"wrote {args.dst}: {json.dumps(summary)}")
    return 0
