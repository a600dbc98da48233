"""Classification metrics as pure functions of tensors (no model, no data loader, no process group).

Single-label (section 4.4, ImageNet): top-k accuracy, from counts that add up over processes.
Multi-label (section 4.3, JFT evaluated on FastEval14k): average precision per class, its mean, and
the paper's MAP@100 with per-class weights. AP and MAP@100 need every score of a class at once: in
distributed evaluation gather the (N, C) scores and targets of all processes first, then call these.
docs/metrics.md states the definitions with a worked example.
"""

from __future__ import annotations

import torch


def check_single_label(logits: torch.Tensor, targets: torch.Tensor) -> None:
    if logits.ndim != 2 or targets.shape != (logits.shape[0],):
        raise ValueError(
            f"expected logits (N, C) and targets (N,), got {tuple(logits.shape)} and {tuple(targets.shape)}"
        )
    if targets.numel() and (targets.min() < 0 or targets.max() >= logits.shape[1]):
        raise ValueError(
            f"targets must be class indices in [0, {logits.shape[1]}), got {targets.min()}..{targets.max()}"
        )


def check_multilabel(scores: torch.Tensor, targets: torch.Tensor) -> None:
    if scores.ndim != 2 or targets.shape != scores.shape:
        raise ValueError(
            f"expected scores and multi-hot targets of the same shape (N, C), got {tuple(scores.shape)} "
            f"and {tuple(targets.shape)}"
        )
    if not torch.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinity; rank finite scores (e.g. logits or probabilities)")
    if not ((targets == 0) | (targets == 1)).all():
        raise ValueError("targets must be multi-hot: every entry 0 or 1")


def topk_correct(logits: torch.Tensor, targets: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> torch.Tensor:
    """How many of the N examples have their target among the k highest logits, for each k in `ks`.

    logits: (N, C); targets: (N,) class indices. Returns int64 (len(ks),), on logits' device: counts,
    so processes can sum them and divide by the summed N. k >= C counts every example. Among equal
    logits the order is `torch.topk`'s.
    """
    check_single_label(logits, targets)
    top = logits.topk(min(max(ks), logits.shape[1]), dim=1).indices
    hits = top == targets[:, None]
    return torch.stack([hits[:, :k].any(dim=1).sum() for k in ks])


def topk_accuracy(
    logits: torch.Tensor, targets: torch.Tensor, ks: tuple[int, ...] = (1, 5)
) -> dict[str, float]:
    """{"top1": fraction, "top5": fraction, ...}: `topk_correct` divided by N (N must be > 0)."""
    if logits.shape[0] == 0:
        raise ValueError("top-k accuracy of zero examples is undefined")
    correct = topk_correct(logits, targets, ks)
    return {f"top{k}": int(c) / logits.shape[0] for k, c in zip(ks, correct.tolist(), strict=True)}


CLASS_CHUNK = 1024  # classes ranked at a time: bounds the memory of the sort for JFT-sized outputs


def by_class_chunks(function, scores: torch.Tensor, targets: torch.Tensor, **kwargs) -> torch.Tensor:
    """`function(scores[:, chunk], targets[:, chunk])` over chunks of CLASS_CHUNK classes, concatenated."""
    check_multilabel(scores, targets)
    return torch.cat(
        [
            function(
                scores[:, begin : begin + CLASS_CHUNK], targets[:, begin : begin + CLASS_CHUNK], **kwargs
            )
            for begin in range(0, scores.shape[1], CLASS_CHUNK)
        ]
    )


def average_precision(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Average precision of each class over all N examples, as scikit-learn and torchmetrics define it.

    scores: (N, C) finite, higher = more confident; targets: (N, C) multi-hot (0/1).
    AP_c = sum over score thresholds t (descending) of (R(t) - R(t_previous)) * P(t), where P and R
    are the precision and recall of the examples scoring >= t. Examples with equal scores are one
    threshold: they enter together, so their order does not matter. Returns float64 (C,), NaN for a
    class with no positive example (its AP is undefined).
    """
    return by_class_chunks(average_precision_of_chunk, scores, targets)


def average_precision_of_chunk(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    count = scores.shape[0]
    sorted_scores, order = scores.double().sort(dim=0, descending=True, stable=True)
    relevant = targets.double().gather(0, order)
    true_positives = relevant.cumsum(0)
    precision = (
        true_positives / torch.arange(1, count + 1, dtype=torch.float64, device=scores.device)[:, None]
    )
    # The precision at the end of each run of equal scores, given to every example of the run.
    position = torch.arange(count, device=scores.device)[:, None].expand(count, scores.shape[1])
    run_end = torch.ones_like(sorted_scores, dtype=torch.bool)
    run_end[:-1] = sorted_scores[:-1] != sorted_scores[1:]
    end_position = torch.where(run_end, position, count).flip(0).cummin(0).values.flip(0)
    precision_at_run_end = precision.gather(0, end_position)
    positives = relevant.sum(0)
    return (relevant * precision_at_run_end).sum(0) / positives  # 0 / 0 = NaN for no positives


def average_precision_at_k(scores: torch.Tensor, targets: torch.Tensor, k: int = 100) -> torch.Tensor:
    """AP@k of each class: the precision of its ranked list at each positive among the top k.

    Each class ranks the N examples by score, descending; equal scores keep their input order (the
    lower row index ranks first), so the result is deterministic. With rel_i = 1 when the example at
    rank i is a positive and P@i = (positives among ranks 1..i) / i:

        AP@k_c = sum_{i=1..min(k, N)} rel_i * P@i / min(k, n_c),  n_c = number of positives of c.

    Dividing by min(k, n_c) makes a perfect top k score 1 even when the class has more than k
    positives. Returns float64 (C,), NaN for a class with no positive example.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return by_class_chunks(average_precision_at_k_of_chunk, scores, targets, k=k)


def average_precision_at_k_of_chunk(scores: torch.Tensor, targets: torch.Tensor, *, k: int) -> torch.Tensor:
    depth = min(k, scores.shape[0])
    order = scores.sort(dim=0, descending=True, stable=True).indices[:depth]
    relevant = targets.double().gather(0, order)  # (depth, C)
    precision = (
        relevant.cumsum(0) / torch.arange(1, depth + 1, dtype=torch.float64, device=scores.device)[:, None]
    )
    positives = targets.double().sum(0)
    return (relevant * precision).sum(0) / positives.clamp(max=k)  # 0 / 0 = NaN for no positives


def weighted_class_mean(per_class: torch.Tensor, class_weights: torch.Tensor | None) -> torch.Tensor:
    """sum_c w_c x_c / sum_c w_c over the classes whose x_c is not NaN (uniform w when None).

    NaN when no class is left. Raises ValueError for negative weights or a wrong shape.
    """
    weights = (
        torch.ones_like(per_class) if class_weights is None else class_weights.double().to(per_class.device)
    )
    if weights.shape != per_class.shape:
        raise ValueError(f"class_weights has shape {tuple(weights.shape)}, expected {tuple(per_class.shape)}")
    if (weights < 0).any():
        raise ValueError("class_weights must be >= 0")
    kept = ~per_class.isnan()
    return (weights[kept] * per_class[kept]).sum() / weights[kept].sum()


def mean_average_precision(
    scores: torch.Tensor, targets: torch.Tensor, class_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """The (weighted) mean of `average_precision` over the classes with at least one positive.

    Returns a float64 scalar tensor in [0, 1]; NaN when no class has a positive.
    """
    return weighted_class_mean(average_precision(scores, targets), class_weights)


def map_at_k(
    scores: torch.Tensor, targets: torch.Tensor, k: int = 100, class_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """The paper's MAP@100 (k=100): the weighted mean of `average_precision_at_k` over the classes.

    scores, targets: (N, C) as in `average_precision_at_k`; class_weights: (C,) >= 0 or None
    (uniform). FastEval14k weights each class by how common it is: see
    `xception.data.class_weights.frequency_class_weights`. Classes with no positive among the N
    examples are left out of both sums (their AP@k is undefined); the remaining weights are
    renormalised. Returns a float64 scalar tensor in [0, 1] (the paper prints it in percent); NaN
    when no class has a positive.
    """
    return weighted_class_mean(average_precision_at_k(scores, targets, k), class_weights)
