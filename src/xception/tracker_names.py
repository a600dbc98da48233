"""The names of the experiment trackers (`xception.train.trackers`), for the command line's choices
and the training config: torch-free, so that `xception --help` stays quick."""

from __future__ import annotations

from typing import Literal, get_args

TrackerName = Literal["tensorboard", "mlflow", "wandb"]
TRACKERS: tuple[TrackerName, ...] = get_args(TrackerName)
DEFAULT_TRACKERS: tuple[TrackerName, ...] = ("tensorboard",)
# How a run's attempt ended, as a tracker records it: the budget done, stopped to be continued
# (stop_after_steps, a preemption signal), or an error.
Outcome = Literal["finished", "stopped", "failed"]
# The package each tracker logs through, and the extra of this project that installs it.
PACKAGES: dict[TrackerName, tuple[str, str]] = {
    "tensorboard": ("tensorboard", "the base install"),
    "mlflow": ("mlflow", "pip install 'xception[track]'"),
    "wandb": ("wandb", "pip install 'xception[track]'"),
}
