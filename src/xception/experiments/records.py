"""What one training run of one arm with one seed produced, as JSON beside its run directory."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xception.atomic_write import write_text_atomic

RECORD = "record.json"


@dataclass(frozen=True)
class RunRecord:
    """One arm, one seed.

    history: the evaluations during training (`xception.train.EvalRecord` as dicts: epoch, step,
        samples, wall_s, train_loss, lr, metrics on the test set).
    test: the final test-set metrics (Polyak-averaged weights when the recipe averages).
    train: the same metrics of the same weights on a fixed, unaugmented subset of training images.
    """

    arm: str
    seed: int
    parameters: int
    history: list[dict[str, Any]]
    test: dict[str, float]
    train: dict[str, float]
    wall_s: float
    steps: int
    run_dir: str
    train_config: dict[str, Any]  # `TrainConfig.to_dict()`: reused only when identical
    runtime: dict[str, Any]
    score_training_images: bool | None = None  # whether `train` was measured (None: not recorded)

    def save(self, run_dir: Path) -> Path:
        path = Path(run_dir) / RECORD
        return write_text_atomic(path, json.dumps(dataclasses.asdict(self), indent=2, default=str))


def load_record(run_dir: Path) -> RunRecord | None:
    """The record in `run_dir`, or None when there is none."""
    path = Path(run_dir) / RECORD
    if not path.is_file():
        return None
    return RunRecord(**json.loads(path.read_text()))
