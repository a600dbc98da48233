"""The reliability diagram (Guo et al. 2017, figure 1, bottom): per confidence bin, the accuracy of
its predictions against their mean confidence; a calibrated model's bars follow the diagonal. One
panel per set of bins: before the temperature, and after it where the weights carry one."""

from __future__ import annotations

import os
from pathlib import Path

from xception.atomic_write import save_figure_atomic
from xception.metrics.calibration import CalibrationBins

TITLES = {"raw": "before temperature scaling", "calibrated": "after temperature scaling"}


def save_reliability_diagram(path: str | os.PathLike, bins: dict[str, CalibrationBins], *,
                             title: str = "") -> Path:
    """Write the diagram of `bins` ({"raw": ..., "calibrated": ...}, either may be left out) to
    `path` (PNG): per bin a bar at its accuracy, the gap to its mean confidence shaded, the ECE in
    each panel's title and the number of predictions per bin below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [name for name in ("raw", "calibrated") if name in bins]
    figure, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 4.4), squeeze=False)
    for axis, name in zip(axes[0], names, strict=True):
        panel = bins[name]
        count = len(panel.count)
        edges = [i / count for i in range(count)]
        accuracy = panel.accuracy().nan_to_num(0).tolist()
        confidence = panel.mean_confidence().tolist()
        filled = [n > 0 for n in panel.count.tolist()]
        axis.bar(edges, accuracy, width=1 / count, align="edge", color="C0", edgecolor="black", lw=0.5,
                 label="accuracy")
        for left, acc, conf, shown in zip(edges, accuracy, confidence, filled, strict=True):
            if shown:
                axis.bar(left, conf - acc, bottom=acc, width=1 / count, align="edge", color="C3", alpha=0.3,
                         edgecolor="C3", lw=0.5)
        axis.plot([0, 1], [0, 1], "--", color="gray", lw=1, label="perfect calibration")
        axis.set_xlim(0, 1)
        axis.set_ylim(0, 1)
        axis.set_xlabel("confidence")
        axis.set_ylabel("accuracy")
        axis.set_title(f"{TITLES[name]}: ECE {panel.expected_calibration_error():.3f}", fontsize=10)
        axis.legend(loc="upper left", fontsize=8)
        axis.text(0.98, 0.02, f"{int(panel.count.sum())} predictions, {len(edges)} bins", ha="right",
                  va="bottom", fontsize=8, transform=axis.transAxes)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    written = save_figure_atomic(figure, path, dpi=100)
    plt.close(figure)
    return written
