"""`xception data`: obtain Fashion-MNIST, inspect a data source, or write it to disk as a multi-label
manifest or WebDataset shards."""

from __future__ import annotations

import argparse
import json

from xception.data.sources import SOURCES


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """The DataConfig fields as options; unset options keep DataConfig's defaults (defined only there)."""
    parser.add_argument("--source", choices=SOURCES, required=True)
    parser.add_argument(
        "--data", dest="path", help="dataset directory (Fashion-MNIST: optional, see docs/data.md)"
    )
    parser.add_argument("--image-size", type=int, required=True, help="side of the model input in pixels")
    parser.add_argument("--in-channels", type=int, choices=(1, 3))
    parser.add_argument("--crop-fraction", type=float)
    parser.add_argument(
        "--download", action="store_true", default=None, help="download Fashion-MNIST if absent"
    )
    parser.add_argument("--seed", type=int)
    parser.add_argument("--mosaic-grid", type=int)
    parser.add_argument("--mosaic-train-size", type=int)
    parser.add_argument("--mosaic-val-size", type=int)
    parser.add_argument("--mosaic-class-skew", type=float)


def data_config(args: argparse.Namespace, **fixed):
    from dataclasses import fields

    from xception.data import DataConfig

    given = {
        f.name: getattr(args, f.name) for f in fields(DataConfig) if getattr(args, f.name, None) is not None
    }
    return DataConfig(**{"path": None, **given, **fixed})


def add_parser(subparsers) -> None:
    from xception.cli.video import add_frames_action

    parser = subparsers.add_parser(
        "data",
        help="inspect a data source, or write it as a manifest or WebDataset shards",
        description="Inspect a data source (sizes, classes, value range, loading speed), or export it: "
        "a multi-label source as a manifest directory with PNG images, any source as WebDataset shards.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    fetch = actions.add_parser(
        "fetch", help="obtain Fashion-MNIST as `make demo` does (Debian package, else the download)",
        description="Find Fashion-MNIST, else install Debian's dataset-fashion-mnist (where apt-get is usable), "
        "else download it from the official mirror into ~/.cache/xception/fashion-mnist; print its directory.",
    )
    fetch.add_argument("--data", dest="path", help="a directory that holds (or will hold) the four IDX files")
    fetch.set_defaults(run=run_fetch)
    inspect = actions.add_parser("inspect", help="sizes, classes, item shape and range, training items/s")
    add_data_options(inspect)
    inspect.add_argument("--batch-size", type=int, default=256)
    inspect.add_argument("--batches", type=int, default=20, help="timed batches (0: skip the timing)")
    inspect.add_argument("--num-workers", type=int, default=0)
    inspect.set_defaults(run=run_inspect)
    export = actions.add_parser("export", help="write a manifest directory or WebDataset shards")
    add_data_options(export)
    export.add_argument("--to", required=True, help="output directory")
    export.add_argument("--format", choices=("jsonl", "csv", "shards"), required=True)
    export.add_argument("--shard-size", type=int, default=1000, help="samples per shard (--format shards)")
    export.set_defaults(run=run_export)
    add_frames_action(actions)


def run_fetch(args: argparse.Namespace) -> int:
    from xception.data.fashion_mnist import obtain_fashion_mnist

    print(f"Fashion-MNIST: {obtain_fashion_mnist(args.path)}")
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    from xception.data import build_datasets
    from xception.data.summary import loading_rate, summarize

    datasets = build_datasets(data_config(args))
    summary = summarize(datasets)
    if args.batches > 0:
        rate = loading_rate(
            datasets.train, batch_size=args.batch_size, batches=args.batches, num_workers=args.num_workers
        )
        summary["train_items_per_second"] = round(rate)
    print(json.dumps(summary, indent=1))
    return 0


def run_export(args: argparse.Namespace) -> int:
    from xception.data import build_datasets
    from xception.data.manifest import write_multilabel_dataset
    from xception.data.shards import write_shards
    from xception.data.summary import split_size

    # Shards store the source images (read back with the source's preparation); a manifest stores the
    # items as the evaluation pipeline prepares them.
    datasets = build_datasets(data_config(args, augment=False))
    if args.format == "shards":
        directory = write_shards(datasets, args.to, shard_size=args.shard_size)
    else:
        directory = write_multilabel_dataset(datasets, args.to, manifest_format=args.format)
    print(
        f"wrote {split_size(datasets.train)} training and {split_size(datasets.val)} validation items to {directory}"
    )
    return 0
