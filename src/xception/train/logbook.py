"""The run's record on rank 0: per-step and per-evaluation metrics as JSON lines, the same numbers
to the run's trackers (TensorBoard, MLflow, W&B: `xception.train.trackers`), plus the
training-curve figure at the end."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xception.atomic_write import save_figure_atomic

if TYPE_CHECKING:
    from xception.tracker_names import Outcome
    from xception.train.trackers import Trackers

METRICS = "metrics.jsonl"
CURVES = "curves.png"


class Logbook:
    """Appends to `run_dir/metrics.jsonl` (one JSON object a line, `kind` "step", "eval" or
    "resume") and hands each row's numbers to `trackers` as "KIND/NAME" at the row's step. Inactive
    (writes nothing) on ranks other than 0."""

    # Columns that are the row's position, not a measurement: the trackers get them as the step.
    POSITION = ("step", "epoch", "samples")

    def __init__(self, run_dir: Path, *, active: bool, trackers: Trackers | None = None) -> None:
        self.run_dir, self.active, self.trackers = run_dir, active, trackers

    def write(self, kind: str, values: dict[str, Any]) -> None:
        if not self.active:
            return
        with open(self.run_dir / METRICS, "a") as f:
            f.write(json.dumps({"kind": kind, **values}) + "\n")
        if self.trackers is not None:
            numbers = {f"{kind}/{key}": float(value) for key, value in values.items()
                       if isinstance(value, (int, float)) and key not in self.POSITION}
            if numbers:
                self.trackers.log_metrics(numbers, values["step"])

    def log_image(self, path: Path, step: int) -> None:
        if self.active and self.trackers is not None:
            self.trackers.log_image(path, step)

    def log_file(self, path: Path) -> None:
        if self.active and self.trackers is not None:
            self.trackers.log_file(path)

    def close(self, outcome: Outcome) -> None:
        """Close the trackers, once: `outcome` is how this attempt ended."""
        if self.trackers is not None:
            self.trackers, trackers = None, self.trackers
            trackers.close(outcome)


def plot_curves(run_dir: Path) -> Path:
    """`run_dir/curves.png`: training loss and evaluation loss against epochs (left), the evaluation's
    key metric (ROC-AUC of two classes, top-1, or mAP) against epochs (right), from `metrics.jsonl`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in (run_dir / METRICS).read_text().splitlines() if line.strip()]
    steps = [r for r in rows if r["kind"] == "step"]
    evals = [r for r in rows if r["kind"] == "eval"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot([r["epoch"] for r in steps], [r["loss"] for r in steps], label="training loss", lw=0.8)
    left.plot([r["epoch"] for r in evals], [r["loss"] for r in evals], "o-", label="evaluation loss")
    left.set_xlabel("epoch")
    left.set_yscale("log")
    left.legend()
    # The key metric, as the task picks the best checkpoint by it: ROC-AUC of two classes (NaN on a
    # split of one class, then top-1), else top-1, or MAP for multi-label data.
    key = next((k for k in ("roc_auc", "top1", "map")
                if evals and k in evals[0] and not math.isnan(evals[0][k])), None)
    if key:
        right.plot([r["epoch"] for r in evals], [r[key] for r in evals], "o-", color="C2")
        best = max(r[key] for r in evals if not math.isnan(r[key]))
        right.set_title(f"evaluation {key} (best {best:.4f})")
    right.set_xlabel("epoch")
    right.grid(alpha=0.3)
    fig.tight_layout()
    path = run_dir / CURVES
    save_figure_atomic(fig, path, dpi=110)
    plt.close(fig)
    return path
