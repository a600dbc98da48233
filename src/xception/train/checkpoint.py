"""Full training checkpoints, written atomically and read with `torch.load(weights_only=True)`.

A checkpoint holds only tensors and primitives (no pickled classes), so loading one never runs
code: model and averaged weights, optimizer and loss-scaler state, progress (epoch, step,
samples: the data order follows from them and the seed), every rank's RNG states, the resolved
config, the git commit and the history of evaluations.
"""

from __future__ import annotations

import json
import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xception.atomic_write import write_atomic, write_text_atomic
from xception.errors import UserError

LATEST = "latest.pt"
BEST = "best.pt"
FORMAT = "xception-train-checkpoint/1"  # the "format" entry of a training run's checkpoints


# The entries of a checkpoint that its summary (the .json beside it) repeats, for reads that need
# no tensors: the config to resume with, the step to report.
SUMMARY_KEYS = ("format", "config", "recipe", "class_names", "git_commit")


def capture(parts: dict[str, Any], **plain: Any) -> dict[str, Any]:
    """A checkpoint: the `state_dict()` of each stateful part (merged: their keys are the format's
    top-level entries), plain data, and the format's name. The one place the format is written."""
    state: dict[str, Any] = {"format": FORMAT}
    for part in parts.values():
        state.update(part.state_dict())
    return {**state, **plain}


def restore(state: dict[str, Any], parts: dict[str, Any]) -> None:
    """Give each stateful part its entries back (`load_state_dict` of the whole checkpoint: each part
    reads the keys it wrote)."""
    for part in parts.values():
        part.load_state_dict(state)


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write `state` to `path` atomically (`xception.atomic_write`): a crash at any moment leaves
    either the previous file or the new one, never a partial one. Its summary (`read_summary`) goes
    beside it once the checkpoint is in place (a checkpoint that could not be written leaves no
    summary); a kill between the two leaves the previous summary, one checkpoint behind, whose
    config and step only name things (a resume reads the checkpoint itself)."""
    written = write_atomic(path, lambda file: torch.save(state, file), needed=_tensor_bytes(state))
    if state.get("format") == FORMAT:
        summary = {**{key: state[key] for key in SUMMARY_KEYS if key in state}, "step": state["progress"]["step"]}
        write_text_atomic(Path(path).with_suffix(".json"), json.dumps(summary, default=str))
    return written


def read_summary(path: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint's config, recipe, class names, commit and step, from the small .json beside it
    (checkpoints written before it existed: from the checkpoint itself)."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoints" / LATEST
    sidecar = path.with_suffix(".json")
    if path.is_file() and sidecar.is_file():
        try:
            summary = json.loads(sidecar.read_text())
            if summary.get("format") == FORMAT:
                return summary
        except json.JSONDecodeError:
            pass  # a summary from a filesystem that lost it: the checkpoint itself says the same
    state = load_training_checkpoint(path)
    return {**{key: state[key] for key in SUMMARY_KEYS if key in state}, "step": state["progress"]["step"]}


def evaluated_weights(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The state dict of the weights a checkpoint's run evaluates: the Polyak average when it
    averages, else the model's."""
    from xception.train.averaging import ModelAverage

    return ModelAverage.weights_of(state["average"]) if state.get("average") else state["model"]


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint (a file, or a run directory whose checkpoints/latest.pt is read) on the CPU.
    A file that is not one (empty, cut short, another format, a torch file of something else)
    raises `NotACheckpointError` naming it."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoints" / LATEST
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; give a .pt file or a run directory with checkpoints/{LATEST}")
    what = f"give checkpoints/{LATEST} or best.pt of a training run, or its directory"
    if path.stat().st_size == 0:
        raise NotACheckpointError(f"{path} is empty (0 bytes), not a training checkpoint; {what}")
    kind = _file_kind(path)
    if kind is None:
        raise NotACheckpointError(f"{path} is not a training checkpoint (not a file torch.save writes: neither a "
                                  f"zip archive nor a pickle); {what}")
    if kind != "torch":
        raise NotACheckpointError(f"{path} is a {kind} weight file, not a training checkpoint (weight files go to "
                                  f"--weights of eval and predict); {what}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "GLOBAL" not in str(error):
            raise NotACheckpointError(f"{path} is not a training checkpoint (torch.load cannot unpickle it); "
                                      f"{what}") from error
        raise NotACheckpointError(f"{path} holds Python objects besides tensors and plain data, which are not "
                                  f"loaded since loading them could run code; {what}") from error
    except Exception as error:  # whatever the file holds, torch could not read it as a checkpoint
        reason = str(error).strip().splitlines()[0].split(". ")[0][:120]
        raise NotACheckpointError(f"{path} is not a training checkpoint (torch.load: {type(error).__name__}: "
                                  f"{reason}); {what}") from error
    return state


def load_training_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """`load_checkpoint`, refusing a torch file that is not the checkpoint of a training run."""
    state = load_checkpoint(path)
    if not (isinstance(state, dict) and state.get("format") == FORMAT):
        raise NotACheckpointError(f"{path} is not an xception training checkpoint (torch reads it, but it "
                                  f"has no 'format': {FORMAT!r}); give checkpoints/{LATEST} or best.pt of a training "
                                  "run, or its directory")
    return state


def _file_kind(path: Path) -> str | None:
    """"torch" (what torch.save writes), "safetensors" or "Keras HDF5", from the first bytes; None for
    anything else."""
    from xception.models.weights.sniff import sniff_format

    try:
        kind = sniff_format(path)
    except ValueError:
        return None
    return {"hdf5": "Keras HDF5"}.get(kind, kind)


class NotACheckpointError(UserError):
    """A file given as a checkpoint that is not one."""


def _tensor_bytes(value: Any) -> int:
    """The bytes of the tensors in a nested structure of dicts, lists and tuples."""
    if isinstance(value, torch.Tensor):
        return value.nbytes
    if isinstance(value, dict):
        return sum(_tensor_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(v) for v in value)
    return 0


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
