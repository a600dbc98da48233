"""The experiments' figures (matplotlib, written as PNG): training profiles as the paper's Figures
6-10 draw them, final scores with their spread, and the spectrum's accuracy / size / speed trade-off."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from xception.atomic_write import save_figure_atomic
from xception.experiments.statistics import summarize

if TYPE_CHECKING:
    from xception.experiments.comparison import ComparisonRun
    from xception.experiments.speed_table import SpeedTableRun

METRIC_NAMES = {"top1": "top-1 accuracy", "map_at_100": "weighted MAP@100"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    save_figure_atomic(figure, path, dpi=110)
    _pyplot().close(figure)
    return path


def _curves(run: ComparisonRun, arm: str, x: str, y: str) -> tuple[list[float], list[float], list[float]]:
    """Mean x, mean y and std y over the seeds of `arm`, evaluation by evaluation."""
    histories = [r.history for r in run.records if r.arm == arm]
    length = min(len(h) for h in histories)
    xs, means, stds = [], [], []
    for i in range(length):
        points = [h[i] for h in histories]
        values = [p["metrics"][y] if y in p["metrics"] else p[y] for p in points]
        summary = summarize(values)
        xs.append(sum(p[x] for p in points) / len(points))
        means.append(summary.mean)
        stds.append(summary.std)
    return xs, means, stds


def plot_profiles(run: ComparisonRun, directory: Path) -> list[Path]:
    """profile_steps.png (test score and training loss against steps) and profile_wall.png (test
    score against wall-clock seconds); bands are mean +- std over seeds."""
    plt = _pyplot()
    metric = METRIC_NAMES.get(run.headline, run.headline)
    paths = []
    for name, x, xlabel, panels in (
        ("profile_steps.png", "step", "optimizer steps", ((run.headline, f"test {metric}"), ("train_loss", "training loss"))),
        ("profile_wall.png", "wall_s", "wall-clock seconds (training and evaluation)", ((run.headline, f"test {metric}"),)),
    ):
        figure, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.2), squeeze=False)
        for axis, (y, ylabel) in zip(axes[0], panels, strict=True):
            for arm in run.arms:
                xs, mean, std = _curves(run, arm.label, x, y)
                axis.plot(xs, mean, marker="o", markersize=3, label=f"{arm.label} ({arm.parameters:,} params)")
                axis.fill_between(xs, [m - s for m, s in zip(mean, std, strict=True)],
                                  [m + s for m, s in zip(mean, std, strict=True)], alpha=0.2)
            axis.set_xlabel(xlabel)
            axis.set_ylabel(ylabel)
            axis.grid(alpha=0.3)
        axes[0][0].legend(fontsize=8)
        figure.suptitle(f"{run.comparison.name} ({run.comparison.paper_ref}), {run.scale.name} scale, "
                        f"{len(run.seeds)} seed(s): mean ± std")
        paths.append(_save(figure, directory / name))
    return paths


def plot_final(run: ComparisonRun, directory: Path) -> Path:
    """final.png: the final test and training scores of every arm, mean with std error bars."""
    plt = _pyplot()
    labels = [a.label for a in run.arms]
    figure, axis = plt.subplots(figsize=(max(5.0, 1.3 * len(labels) + 2), 4))
    splits = [("test", "tab:blue")] + ([("train", "tab:orange")] if all(run.headline in r.train for r in run.records) else [])
    for offset, (split, colour) in enumerate(splits):
        summaries = [summarize([getattr(r, split)[run.headline] for r in run.records if r.arm == label])
                     for label in labels]
        positions = [i + (offset - 0.5) * 0.38 for i in range(len(labels))]
        axis.bar(positions, [s.mean for s in summaries], width=0.38, yerr=[s.std for s in summaries],
                 capsize=4, color=colour, label=split)
    axis.set_xticks(range(len(labels)), labels, rotation=20)
    axis.set_ylabel(f"final {METRIC_NAMES.get(run.headline, run.headline)}")
    low = min(getattr(r, s)[run.headline] for r in run.records for s, _ in splits)
    axis.set_ylim(max(0.0, low - 0.1), None)
    axis.legend()
    axis.set_title(f"{run.comparison.name}, {run.scale.name} scale: mean ± std over {len(run.seeds)} seed(s)")
    return _save(figure, directory / "final.png")


def plot_tradeoff(run: ComparisonRun, directory: Path) -> Path:
    """tradeoff.png: final test score against parameters (left) and against training steps/s (right)."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for arm in run.arms:
        score = summarize([r.test[run.headline] for r in run.records if r.arm == arm.label])
        speed = run.speeds[arm.label].steps_per_s
        for axis, x in zip(axes, (arm.parameters, speed), strict=True):
            axis.errorbar([x], [score.mean], yerr=[score.std], marker="o", capsize=4, label=arm.label)
    axes[0].set_xlabel("trainable parameters")
    axes[1].set_xlabel(f"training steps/s (batch {run.scale.batch_size}, {run.scale.precision})")
    for axis in axes:
        axis.set_ylabel(f"final test {METRIC_NAMES.get(run.headline, run.headline)}")
        axis.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    figure.suptitle(f"{run.comparison.name}, {run.scale.name} scale: accuracy vs parameters vs speed")
    return _save(figure, directory / "tradeoff.png")


def plot_speed_table(run: SpeedTableRun, directory: Path) -> Path:
    """speed.png: training steps/s of each network on each device, mean with std error bars."""
    plt = _pyplot()
    device_names = sorted({row.device for row in run.rows})
    figure, axes = plt.subplots(1, len(device_names), figsize=(5 * len(device_names), 4), squeeze=False)
    for axis, device in zip(axes[0], device_names, strict=True):
        rows = [row for row in run.rows if row.device == device]
        axis.bar([row.model for row in rows], [row.steps_per_s.mean for row in rows],
                 yerr=[row.steps_per_s.std for row in rows], capsize=4, color=["tab:blue", "tab:orange"][: len(rows)])
        axis.set_ylabel(f"training steps/s (batch {run.scale.table3_batch_size}, {run.scale.precision})")
        axis.set_title(device)
    figure.suptitle(f"Table 3 on this machine ({run.table.image_size} px), {run.scale.name} scale")
    return _save(figure, directory / "speed.png")
