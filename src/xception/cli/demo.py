"""`xception demo`: Fashion-MNIST, obtained by itself, and the small Xception trained and evaluated."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="train the small Xception on Fashion-MNIST and evaluate it (what `make demo` runs)",
        description="Obtain Fashion-MNIST (Debian package via apt-get, else the official download), "
        "train xception_small with the fashion_mnist_demo recipe on the CPU (or a GPU), evaluate on the "
        "official 10,000 test images, and print where the checkpoint, metrics and plot are.",
    )
    parser.add_argument("--data", help="a directory holding Fashion-MNIST's four IDX files")
    parser.add_argument("--out", default="runs/demo", help="the run directory (default runs/demo)")
    parser.add_argument("--long", action="store_true", help="the fashion_mnist_long preset: width 1.0, 60 epochs, random erasing; 95.3%% in 8 min on one H100, many hours on 2 CPU cores")
    parser.add_argument("--epochs", type=float, help="override the recipe's number of epochs")
    parser.add_argument("--device", help="cpu or cuda (default: a GPU when there is one)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import time

    from xception.data.fashion_mnist import obtain_fashion_mnist
    from xception.train import fit
    from xception.train.demo import demo_config

    start = time.perf_counter()
    directory = obtain_fashion_mnist(args.data)
    config = demo_config(data_path=str(directory), out_dir=args.out, long=args.long, device=args.device,
                         epochs=args.epochs)
    config.check()
    print(f"Fashion-MNIST from {directory}; training {config.model} with recipe {config.recipe}")
    result = fit(config)
    m = result.metrics
    print(f"\nFashion-MNIST test set ({m['examples']} images): top-1 {m['top1']:.4f}, top-5 {m['top5']:.4f}, "
          f"after {result.steps} steps; {time.perf_counter() - start:.0f} s in all")
    print(f"  checkpoint: {result.checkpoint}")
    print(f"  weights:    {result.weights}  (try: xception predict IMAGE --weights {result.weights})")
    print(f"  metrics:    {result.run_dir / 'metrics.jsonl'} (TensorBoard: {result.run_dir / 'tensorboard'})")
    print(f"  plot:       {result.run_dir / 'curves.png'}")
    return 0
