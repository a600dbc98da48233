"""`binary_report`: the per-image and per-group detection metrics of a binary classifier, from
its per-image scores, the targets and the image files (grouped as `xception.data.groups` says)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from xception.data.groups import groups_from_manifest, groups_from_pattern
from xception.metrics.binary import binary_metrics, group_means


def binary_report(scores: torch.Tensor, targets: torch.Tensor, paths: Sequence[str], *,
                  pattern: str | None = None, manifest: str | os.PathLike | None = None,
                  column: str | None = None) -> dict[str, Any]:
    """{"frame": metrics, "group": metrics or None, "grouped_by": how}: `binary_metrics` of the
    images (scores (N,) positive-class probabilities, targets (N,) 0/1, paths N image files), and of
    their groups (the mean probability of each group's images, `group_means`), grouped by the
    first capture group of `pattern` in each path, or by `column` of `manifest`. With neither, no
    grouping ("group" None)."""
    if len(paths) != len(scores):
        raise ValueError(f"{len(paths)} paths for {len(scores)} scores")
    if pattern is not None and manifest is not None:
        raise ValueError("group by a file-name pattern or by a manifest column, not both")
    if (manifest is None) != (column is None):
        raise ValueError("grouping by a manifest needs both the manifest file and the name of its group column")
    report: dict[str, Any] = {"frame": binary_metrics(scores, targets), "group": None, "grouped_by": None}
    if pattern is not None:
        groups, report["grouped_by"] = groups_from_pattern(paths, pattern), f"pattern {pattern}"
    elif manifest is not None:
        groups, report["grouped_by"] = groups_from_manifest(paths, manifest, column), f"{manifest}:{column}"
    else:
        return report
    group_scores, group_targets, _ = group_means(scores, targets, groups)
    report["group"] = binary_metrics(group_scores, group_targets)
    return report
