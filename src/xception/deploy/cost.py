"""What a deployment path costs in accuracy: top-1 before and after, and how often the two agree.

An int8 (or bf16, or other-runtime) engine is compared with the fp32 reference on the same images:
the top-1 accuracy of each, the points lost, and the agreement, the fraction of images whose top-1
class is the same in both (the figure that says how many users would see another answer).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from xception.deploy.engines import Engine


def engine_logits(engine: Engine, dataset: Dataset, *, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """The (N, num_classes) logits of `engine` over a single-label `dataset`, and its (N,) targets."""
    logits, targets = [], []
    for images, labels in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        logits.append(engine(images))
        targets.append(labels)
    return torch.cat(logits), torch.cat(targets)


def agreement_report(reference: torch.Tensor, candidate: torch.Tensor, targets: torch.Tensor) -> dict[str, Any]:
    """Top-1 of the `reference` and `candidate` logits (N, num_classes) against `targets` (N,), the
    points lost (100 x the difference) and the top-1 agreement between the two, all in [0, 1] but
    the points."""
    ref_top1, cand_top1 = reference.argmax(1), candidate.argmax(1)
    top1_reference = float((ref_top1 == targets).float().mean())
    top1_candidate = float((cand_top1 == targets).float().mean())
    return dict(
        examples=int(targets.numel()),
        top1_reference=top1_reference,
        top1_candidate=top1_candidate,
        points_lost=100 * (top1_reference - top1_candidate),
        agreement=float((ref_top1 == cand_top1).float().mean()),
    )
