"""Experiment trackers: where a run's record goes besides `metrics.jsonl`, each through its own
library's client. TensorBoard (event files in `run_dir/tensorboard`, the default), MLflow (a
tracking server or store: `MLFLOW_TRACKING_URI`, `MLFLOW_EXPERIMENT_NAME`) and Weights & Biases
(`WANDB_MODE`, `WANDB_PROJECT`, `WANDB_DIR`).

Every tracker gets the same record from `xception.train.logbook.Logbook`, on rank 0 only:

    params   the resolved config (config.json) flattened to dotted keys, once, when its run is created
    metrics  each metrics.jsonl row's numbers as "KIND/NAME" (step/loss, eval/top1), at the row's step
    image    curves.png at the end
    file     the final weights.safetensors (an MLflow artifact, a W&B run file)

A tracker continues its own run when the training continues: its `state()` (MLflow's tracking
URI and run id, W&B's run id and mode) is written into config.json's "tracking" section and read
back by the next attempt in the same run directory.

A tracker never stops or changes the training (`xception.train.trackers.guarded`): its calls run on
a thread of their own, and the first one that fails is said in one warning, after which the tracker
is left out. Only a fresh run refuses to start when MLflow's server cannot be reached, since
nothing is lost then; a continued run goes on without it.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from xception.errors import UserError
from xception.tracker_names import PACKAGES, TRACKERS, Outcome, TrackerName

# The class of each tracker, "module:Class" under this package, imported only when asked for.
_REGISTRY: dict[TrackerName, str] = {
    "tensorboard": "tensorboard_tracker:TensorBoardTracker",
    "mlflow": "mlflow_tracker:MlflowTracker",
    "wandb": "wandb_tracker:WandbTracker",
}


class Tracker(ABC):
    """One tracker's run. `open` creates it, or continues the run that `earlier` (its `state()`
    recorded by an earlier attempt) names; `continued` says which."""

    name: str
    continued: bool

    @classmethod
    @abstractmethod
    def open(cls, run_dir: Path, *, run_name: str, earlier: dict[str, Any] | None,
             first_step: int | None) -> Tracker:
        """`first_step`: the first step a continued training logs again (None on a fresh start)."""

    @classmethod
    @abstractmethod
    def check(cls, *, fresh: bool) -> None:
        """Raise UserError when this tracker cannot work here (a server that does not answer) and
        `fresh` (nothing trained yet); a continued run goes on without it instead."""

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """Plain data for config.json that lets `open` continue this run."""

    @abstractmethod
    def log_params(self, params: dict[str, Any]) -> None:
        """`params`: flat {dotted key: str, int, float, bool or None}."""

    @abstractmethod
    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...

    @abstractmethod
    def log_image(self, path: Path, step: int) -> None:
        """A PNG file (the training curves)."""

    @abstractmethod
    def log_file(self, path: Path) -> None:
        """A file to keep with the run (the final weights)."""

    @abstractmethod
    def close(self, outcome: Outcome) -> None:
        """End this attempt's logging; a "stopped" or "failed" run may be continued by a later `open`."""


def tracker_class(name: TrackerName) -> type[Tracker]:
    module, _, attribute = _REGISTRY[name].partition(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), attribute)


def check_trackers(names: Iterable[str], *, fresh: bool) -> None:
    """Fail with one line for a tracker that is unknown, not installed, or (on a `fresh` start) whose
    server does not answer. Cheap: imports no tracker library."""
    names = list(names)
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise UserError(f"--tracker {', '.join(repeated)} given more than once")
    for name in names:
        if name not in TRACKERS:
            raise UserError(f"unknown tracker {name!r}; valid: {', '.join(TRACKERS)}")
        package, install = PACKAGES[name]
        if importlib.util.find_spec(package) is None:
            raise UserError(f"--tracker {name} needs the {package} package, which is not installed: {install}")
        tracker_class(name).check(fresh=fresh)


def open_trackers(names: Iterable[TrackerName], run_dir: Path, *, params: dict[str, Any],
                  earlier: dict[str, Any] | None, first_step: int | None) -> Trackers:
    """Each tracker of `names`, opened (continuing the runs `earlier`, config.json's "tracking"
    section of an earlier attempt, names) and given `params` when its run is new. A tracker that
    fails to open is said in one warning and left out."""
    from xception.train.trackers.guarded import GuardedTracker

    earlier = earlier or {}
    opened = []
    for name in names:
        guarded = GuardedTracker.open(tracker_class(name), run_dir, run_name=str(run_dir),
                                      earlier=earlier.get(name), first_step=first_step)
        if guarded is not None:
            if not guarded.continued:
                guarded.log_params(flatten(params))
            opened.append(guarded)
    return Trackers(tuple(names), opened)


class Trackers:
    """The trackers of one run, called together; each call returns at once (see `guarded`)."""

    def __init__(self, names: tuple[TrackerName, ...], trackers: list) -> None:
        self.names, self.trackers = names, trackers

    def state(self) -> dict[str, Any]:
        """config.json's "tracking" section: the trackers asked for, and each open one's state."""
        return {"trackers": list(self.names), **{t.name: t.state() for t in self.trackers}}

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        for tracker in self.trackers:
            tracker.log_metrics(metrics, step)

    def log_image(self, path: Path, step: int) -> None:
        for tracker in self.trackers:
            tracker.log_image(path, step)

    def log_file(self, path: Path) -> None:
        for tracker in self.trackers:
            tracker.log_file(path)

    def close(self, outcome: Outcome) -> None:
        for tracker in self.trackers:
            tracker.close(outcome)


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"train": {"data": {"image_size": 16}}} -> {"train.data.image_size": 16}; lists as JSON text."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        elif isinstance(value, (list, tuple)):
            flat[f"{prefix}{key}"] = json.dumps(value, default=str)
        elif value is None or isinstance(value, (str, int, float, bool)):
            flat[f"{prefix}{key}"] = value
        else:
            flat[f"{prefix}{key}"] = str(value)
    return flat
