"""Full training checkpoints, written atomically and read with `torch.load(weights_only=True)`.

A checkpoint holds only tensors and primitives (no pickled classes), so loading one never runs
code: model and averaged weights, optimizer and loss-scaler state, progress (epoch, step,
samples: the data order follows from them and the seed), every rank's RNG states, the resolved
config, the git commit and the history of evaluations.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xception.atomic_write import write_atomic

LATEST = "latest.pt"
BEST = "best.pt"


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write `state` to `path` atomically (`xception.atomic_write`): a crash at any moment leaves
    either the previous file or the new one, never a partial one."""
    return write_atomic(path, lambda file: torch.save(state, file))


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint (a file, or a run directory whose checkpoints/latest.pt is read) on the CPU."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoints" / LATEST
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; give a .pt file or a run directory with checkpoints/{LATEST}")
    return torch.load(path, map_location="cpu", weights_only=True)


def capture_rng_state() -> dict[str, Any]:
    """This process's random number generators, as tensors and primitives."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """The inverse of `capture_rng_state`."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
