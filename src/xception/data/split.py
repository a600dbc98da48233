"""A validation split cut from one folder of labelled files: stratified by class, seeded, and a pure
function of the sorted file list and the seed, so every process of a torchrun job and every resume
of a run cuts the same split without talking to each other.

Each class c with n_c items gives round(f x n_c) of them to validation, at least 1 and at most
n_c - 1 when n_c >= 2, so every class is both learnt and measured. A class of one item cannot be
both: it goes to training (and a warning names it). Which items go is a permutation of the class's
items, in their sorted order, drawn from NumPy's PCG64 seeded with (seed, class index): the
draw of one class does not depend on the other classes' files.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

log = logging.getLogger(__name__)


def validation_count(size: int, fraction: float) -> int:
    """How many of a class's `size` items go to validation: round(fraction x size) (halves round
    up), clamped to [1, size - 1] when size >= 2; 0 for a class of one item."""
    if size < 2:
        return 0
    return min(max(int(np.floor(fraction * size + 0.5)), 1), size - 1)


def stratified_split(labels: Sequence[int], *, fraction: float, seed: int,
                     names: Sequence[str] | None = None) -> tuple[list[int], list[int]]:
    """(training indices, validation indices) into `labels`, each ascending.

    labels: the class index of each item, in the sorted order of the files (the order decides the
        split, so give it the same order every time). fraction: in (0, 1). names: the class names,
        for the warning about classes of one item (default: their indices).
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"the validation fraction must be in (0, 1), got {fraction}")
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size == 0:
        raise ValueError("there is nothing to split: no items")
    validation: list[np.ndarray] = []
    single: list[str] = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = validation_count(len(members), fraction)
        if count == 0:
            single.append(str(names[label]) if names is not None else str(label))
        order = np.random.Generator(np.random.PCG64([seed % 2**64, int(label)])).permutation(len(members))
        validation.append(members[order[:count]])
    if single:
        log.warning("class(es) %s have a single image: it is kept for training, so validation has none of them",
                    ", ".join(single[:10]))
    held_out = np.zeros(len(labels), dtype=bool)
    held_out[np.concatenate(validation)] = True
    return np.flatnonzero(~held_out).tolist(), np.flatnonzero(held_out).tolist()


def grouped_split(labels: Sequence[int], groups: Sequence[str], *, fraction: float, seed: int,
                  names: Sequence[str] | None = None) -> tuple[list[int], list[int]]:
    """`stratified_split` of whole groups (the frames of one video): each group is one item, of its
    items' class, so that no group has items on both sides. Returns (training indices, validation
    indices) into `labels`, each ascending; ValueError naming a group whose items differ in class.

    labels, groups: the class index and the group of each item, in the sorted order of the files."""
    if len(labels) != len(groups):
        raise ValueError(f"{len(labels)} labels for {len(groups)} groups")
    order = sorted(set(groups))  # the groups' order, and so the split, follows their names alone
    group_label: dict[str, int] = {}
    for label, group in zip(labels, groups, strict=True):
        if group_label.setdefault(group, int(label)) != int(label):
            raise ValueError(f"group {group!r} holds items of two classes: a video's frames share its class")
    train_groups, val_groups = stratified_split([group_label[g] for g in order], fraction=fraction, seed=seed,
                                                names=names)
    held_out = {order[i] for i in val_groups}
    train = [i for i, group in enumerate(groups) if group not in held_out]
    val = [i for i, group in enumerate(groups) if group in held_out]
    return train, val
