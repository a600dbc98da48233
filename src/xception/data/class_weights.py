"""Per-class weights for MAP@100: computed from label frequencies, and stored as JSON {name: weight}."""

from __future__ import annotations

import json
from pathlib import Path

import torch


def frequency_class_weights(targets: torch.Tensor) -> torch.Tensor:
    """w_c = n_c / sum_c' n_c', n_c the number of examples labelled c: FastEval14k's weighting, where a
    class counts as much as it is common (section 4.3).

    targets: (N, C) multi-hot. Returns float32 (C,) summing to 1. Raises ValueError with no labels.
    """
    counts = targets.double().sum(0)
    if counts.sum() == 0:
        raise ValueError("cannot weight classes by frequency: the targets hold no label at all")
    return (counts / counts.sum()).float()


def write_class_weights(path: str | Path, class_names: list[str], weights: torch.Tensor) -> None:
    """Write {class name: weight} as JSON, in class order."""
    mapping = {name: float(w) for name, w in zip(class_names, weights.tolist(), strict=True)}
    Path(path).write_text(json.dumps(mapping, indent=1) + "\n")


def read_class_weights(path: str | Path, class_names: list[str]) -> torch.Tensor:
    """The float32 (C,) weights of `class_names` from a JSON file {class name: weight}.

    Every class must have a finite weight >= 0 and the file must name no other class; a ValueError
    names the file and the offending classes otherwise.
    """
    path = Path(path)
    try:
        mapping = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"class-weight file {path} does not exist") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"class-weight file {path} is not valid JSON: {error}") from None
    if not isinstance(mapping, dict):
        raise ValueError(f"class-weight file {path} must hold one JSON object {{class name: weight}}")
    missing = [name for name in class_names if name not in mapping]
    unknown = sorted(set(mapping) - set(class_names))
    if missing or unknown:
        raise ValueError(
            f"class-weight file {path} does not match the classes: missing {missing[:5]}, unknown {unknown[:5]}"
        )
    weights = torch.tensor([float(mapping[name]) for name in class_names], dtype=torch.float32)
    if not torch.isfinite(weights).all() or (weights < 0).any():
        raise ValueError(f"class-weight file {path}: weights must be finite and >= 0")
    return weights
