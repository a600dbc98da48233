"""A training run's directory: the one home of its file names and of the decision to start fresh,
continue or start over.

    config.json, environment.json   the resolved config and where it ran (rewritten by every attempt)
    metrics.jsonl, tensorboard/     one row per logged step and evaluation (cut back on resume)
    checkpoints/latest.pt, best.pt  full training state (`xception.train.checkpoint`), each with a
                                    small .json summary beside it (config, step) for cheap reads
    best.safetensors                the weights of the best evaluation
    split.json                      the files of each split, when data.val_split cut one folder
    curves.png, masks.png           pictures
    weights.safetensors, final.json only once the budget is done (final.json last: the mark of a finished run)
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xception.atomic_write import write_text_atomic
from xception.train.checkpoint import BEST, LATEST
from xception.train.logbook import METRICS

CONFIG = "config.json"
ENVIRONMENT = "environment.json"
FINAL = "final.json"
FINAL_WEIGHTS = "weights.safetensors"  # the evaluated weights at the end of training
BEST_WEIGHTS = "best.safetensors"  # those of the best evaluation
SPLIT = "split.json"
RELIABILITY = "reliability.png"  # the reliability diagram of the validation split, before and after the temperature
CHECKPOINTS = "checkpoints"
# What a run writes besides config.json and environment.json: what starting over deletes.
OUTPUTS = (CHECKPOINTS, "tensorboard", METRICS, FINAL, FINAL_WEIGHTS, BEST_WEIGHTS, SPLIT, "curves.png", RELIABILITY)


@dataclass(frozen=True)
class RunDirectory:
    path: Path

    @classmethod
    def of(cls, checkpoint: str | os.PathLike) -> RunDirectory:
        """The run directory a checkpoint file (or a run directory) belongs to."""
        path = Path(checkpoint)
        if path.is_dir():
            return cls(path)
        return cls(path.parent.parent if path.parent.name == CHECKPOINTS else path.parent)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def latest(self) -> Path:
        return self.path / CHECKPOINTS / LATEST

    @property
    def best(self) -> Path:
        return self.path / CHECKPOINTS / BEST

    def resume_source(self, *, resume: str | None, restart: bool) -> Path | None:
        """The checkpoint a run here continues from: this directory's latest one when it exists
        (unless `restart`), else `resume` (a file, or a run directory), else None (a fresh start)."""
        if restart:
            return None
        if self.latest.is_file():
            return self.latest
        if resume is None:
            return None
        resume_path = Path(resume)
        return RunDirectory(resume_path).latest if resume_path.is_dir() else resume_path

    def check_fresh_start(self) -> None:
        """Refuse to start a new run over an earlier run's outputs that have no checkpoint to continue
        from (its weights would be deleted): that takes --restart."""
        # Metrics and logs of an attempt killed before its first checkpoint hold nothing to keep.
        found = [name for name in (FINAL, FINAL_WEIGHTS, BEST_WEIGHTS) if (self.path / name).exists()]
        if found:
            raise ValueError(f"{self.path} holds an earlier run's {', '.join(found)} but no checkpoint to continue "
                             "from; start over there with --restart (it deletes them), or give another --out")

    def clear_outputs(self) -> None:
        """Delete an earlier run's outputs (starting over is an explicit choice: --restart)."""
        for name in OUTPUTS:
            path = self.path / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)

    def forget_finish(self) -> None:
        """An extended run: the earlier finish no longer holds."""
        for name in (FINAL, FINAL_WEIGHTS):
            (self.path / name).unlink(missing_ok=True)

    def keep_metrics_up_to(self, step: int, *, source: RunDirectory | None = None) -> None:
        """Make metrics.jsonl hold the rows of steps <= `step` only, once each: a resumed run replays the
        steps after its checkpoint, and would otherwise log them twice. Rows come from `source`'s file
        when the run continues another run's checkpoint in a new directory."""
        metrics = (source or self).path / METRICS
        if not metrics.is_file():
            return
        kept = [row for row in map(_parse, metrics.read_text().splitlines())
                if row is not None and row.get("step", 0) <= step]
        write_text_atomic(self.path / METRICS, "".join(json.dumps(row) + "\n" for row in kept))

    def tracking(self) -> dict[str, Any] | None:
        """config.json's "tracking" section (each tracker's run, to continue it), or None."""
        config = self.path / CONFIG
        return json.loads(config.read_text()).get("tracking") if config.is_file() else None

    def final_metrics(self) -> dict[str, Any] | None:
        """The last evaluation of a finished run, or None when it has not finished."""
        final = self.path / FINAL
        return json.loads(final.read_text())["metrics"] if final.is_file() else None


def _parse(line: str) -> dict[str, Any] | None:
    """A metrics row, or None for a blank line or the torn last line of a process killed mid-append."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None
    return row if isinstance(row, dict) else None
