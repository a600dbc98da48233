"""Does the map point at the garment? Train xception_small on Fashion-MNIST canvases (one garment
in one random cell of a 2x2 canvas, the other cells black), then play the pointing game with each
explanation method on the test canvases (garments from Fashion-MNIST's test split): a hit is a map
(of the true class) whose maximum lies in the garment's cell. Chance: 25%.

Writes OUT/README.md (the tables, the command, the machine), OUT/pointing.json (the figures; not
results.json, which names the comparison reports of `xception experiment`) and OUT/pointing.png
(canvases with each method's map). The committed report: reports/explain_pointing/.

    nice -n 10 .venv/bin/python benchmarks/explain_pointing.py --out reports/explain_pointing
    .venv/bin/python benchmarks/explain_pointing.py --smoke --out /tmp/pointing   # the code path, ~1 min
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

METHODS_SHOWN = ("cam", "gradcam", "gradcam++", "scorecam")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="reports/explain_pointing")
    parser.add_argument("--run-dir", default="runs/explain_pointing", help="the training run (weights, logs)")
    parser.add_argument("--train-size", type=int, default=12_000, help="training canvases")
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--test-size", type=int, default=1_000, help="test canvases per method")
    parser.add_argument("--scorecam-size", type=int, default=100,
                        help="test canvases for Score-CAM (one forward pass per channel of the map per canvas)")
    parser.add_argument("--sanity-size", type=int, default=200,
                        help="test canvases for the randomisation check (Adebayo et al.)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core machine)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="a tiny run of the whole code path (figures meaningless)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.smoke:
        args.train_size, args.epochs, args.test_size, args.scorecam_size, args.sanity_size = 256, 1, 40, 4, 20
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    weights, train_metrics = train_classifier(args, Path(args.run_dir))
    train_s = time.perf_counter() - started
    results = play(args, weights)
    results.update(command=" ".join(["benchmarks/explain_pointing.py", *(argv if argv is not None else sys.argv[1:])]),
                   machine=machine(), commit=commit(), train_s=round(train_s, 1), train_metrics=train_metrics,
                   total_s=round(time.perf_counter() - started, 1), train_size=args.train_size, epochs=args.epochs)
    (out / "pointing.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "README.md").write_text(render(results))
    print((out / "README.md").read_text())
    return 0


def train_classifier(args: argparse.Namespace, run_dir: Path) -> tuple[Path, dict]:
    from xception.data import DataConfig
    from xception.train.config import TrainConfig
    from xception.train.fit import fit

    config = TrainConfig(
        data=data_config(args),
        model="xception_small", recipe="fashion_mnist_demo", epochs=args.epochs, batch_size=128,
        out_dir=str(run_dir), restart=True, evaluate_during_training=False, progress=False, trackers=(),
        cpu_threads=args.threads, num_workers=0, seed=args.seed,
    )
    assert isinstance(config.data, DataConfig)
    result = fit(config)
    return result.weights, {k: round(float(v), 4) for k, v in result.metrics.items()}


def data_config(args: argparse.Namespace):
    from xception.data import DataConfig

    # 56 px: the canvas at its own resolution (2x2 cells of 28 px); the last map of xception_small
    # (stride 16) is then 4x4, two map cells per canvas cell and side.
    return DataConfig(source="canvas", path=None, image_size=56, in_channels=1, mosaic_grid=2,
                      mosaic_train_size=args.train_size, mosaic_val_size=args.test_size, seed=args.seed)


def play(args: argparse.Namespace, weights: Path) -> dict:
    from xception.data.mosaic import build_mosaic_split
    from xception.explain.pointing import pointing_game
    from xception.explain.sanity import randomisation_correlations
    from xception.inference.session import InferenceSession

    explained = InferenceSession.open(weights, device="cpu")
    canvases = build_mosaic_split(data_config(args), "test", augment=False)
    rows = []
    for method in METHODS_SHOWN:
        count = args.scorecam_size if method == "scorecam" else args.test_size
        started = time.perf_counter()
        result = pointing_game(explained.model, canvases, method=method, count=count)
        seconds = time.perf_counter() - started
        sanity = min(count, args.sanity_size)
        index = torch.arange(sanity)
        correlations = randomisation_correlations(explained.model, canvases.pipeline(canvases.raw_images(index)),
                                                  canvases.targets[index], method=method, seed=args.seed)
        measured = correlations[~correlations.isnan()]
        rows.append(dict(method=method, layer=result.layer, count=result.count, hits=result.hits,
                         accuracy=round(result.accuracy, 4), classifier_top1=round(result.correct / result.count, 4),
                         seconds=round(seconds, 1), sanity_count=sanity, sanity_flat=sanity - len(measured),
                         spearman_mean=round(float(measured.mean()), 3),
                         spearman_abs_mean=round(float(measured.abs().mean()), 3)))
        print(rows[-1], flush=True)
    draw(explained.model, canvases, Path(args.out) / "pointing.png", explained.class_names,
         count=2 if args.smoke else 6)
    return dict(rows=rows)


def draw(model, canvases, path: Path, class_names: list[str], *, count: int) -> None:
    """A grid: one canvas per row, the canvas then each method's map of its true class over it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from xception.explain import explain
    from xception.explain.overlay import overlay

    index = torch.arange(count)
    images = canvases.pipeline(canvases.raw_images(index))
    labels = canvases.targets[index]
    maps = {m: explain(model, images, labels, method=m).maps for m in METHODS_SHOWN}
    figure, axes = plt.subplots(count, 1 + len(METHODS_SHOWN), figsize=(2 * (1 + len(METHODS_SHOWN)), 2 * count))
    for row in range(count):
        axes[row, 0].imshow(images[row, 0].numpy(), cmap="gray", vmin=-1, vmax=1)
        axes[row, 0].set_title(class_names[int(labels[row])], fontsize=9)
        for column, method in enumerate(METHODS_SHOWN, start=1):
            axes[row, column].imshow(np.asarray(overlay(images[row], maps[method][row])))
            axes[row, column].set_title(method if row == 0 else "", fontsize=9)
    for axis in axes.flat:
        axis.set_axis_off()
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def render(results: dict) -> str:
    lines = [
        "# Pointing game: does the map's maximum fall in the garment's cell?",
        "",
        f"xception_small trained on {results['train_size']} Fashion-MNIST canvases (2x2 cells of 28 px, one garment, "
        f"the rest black) for {results['epochs']} epochs in {results['train_s']} s (final test metrics: "
        f"{results['train_metrics']}); each method explains the true class of the test canvases (garments of "
        "Fashion-MNIST's test split) at the default layer. Chance: 25%.",
        "",
        "| method | layer | canvases | hits | pointing accuracy | classifier top-1 on them | seconds |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in results["rows"]:
        lines.append(f"| {row['method']} | {row['layer']} | {row['count']} | {row['hits']} | "
                     f"{100 * row['accuracy']:.1f}% | {100 * row['classifier_top1']:.1f}% | {row['seconds']} |")
    lines += [
        "",
        "Sanity check of Adebayo et al. (2018): Spearman rank correlation between each canvas's map from the "
        "trained weights and from re-initialised ones (every layer, PyTorch's default initialisation); a map that "
        "explains the model has a low one. Flat maps (the random model has no positive evidence for the class "
        "anywhere) have no ranking and are left out.",
        "",
        "| method | canvases | flat maps left out | mean Spearman | mean absolute Spearman |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in results["rows"]:
        lines.append(f"| {row['method']} | {row['sanity_count']} | {row['sanity_flat']} | {row['spearman_mean']} | "
                     f"{row['spearman_abs_mean']} |")
    lines += [
        "",
        "![canvases and maps](pointing.png)",
        "",
        f"Command: `nice -n 10 .venv/bin/python {results['command']}` at commit {results['commit']}, on "
        f"{results['machine']}; {results['total_s']} s in all.",
        "",
    ]
    return "\n".join(lines)


def machine() -> str:
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    return f"{model}, torch {torch.__version__}, {torch.get_num_threads()} thread(s)"


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
