"""The stateful parts of a run besides the trainer, each with `state_dict` / `load_state_dict` as
torchtitan's parts have, so that `xception.train.checkpoint.capture` and `restore` collect them:

- `Progress`: the optimizer step (the trainer's), attempts, wall time, evaluation history, best
  metric and the training files skipped as unreadable;
- `ProcessStates`: every process's random number generators and training-loss windows (a
  collective: every rank builds and reads it).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

from xception.data.bad_images import BadImageRecord
from xception.distributed import all_gather_objects
from xception.train.checkpoint import capture_rng_state, restore_rng_state
from xception.train.config import EvalRecord
from xception.train.step import Trainer


@dataclasses.dataclass
class LossWindows:
    """This process's training-loss sums not yet reported: since the last log row and since the
    last evaluation. Checkpointed per rank, so a resumed run reports what a straight one does."""

    log_sum: float = 0.0
    log_steps: int = 0
    eval_sum: float = 0.0
    eval_steps: int = 0

    def add(self, loss: float) -> None:
        self.log_sum, self.log_steps = self.log_sum + loss, self.log_steps + 1
        self.eval_sum, self.eval_steps = self.eval_sum + loss, self.eval_steps + 1


class Progress:
    """How far the run is and how it got there. An attempt is one process lifetime: the first run
    or a resume; `attempts` are the earlier ones, {"from_step", "to_step", "wall_s", "processes",
    "micro_batch"} each, and "stopped_by" (a signal's name) for one that a stop signal ended.
    `processes` and `micro_batch` change when an elastic job goes on with fewer or more nodes: the
    global batch, and with it the data order and the learning rate, stays the same."""

    def __init__(self, trainer: Trainer, *, steps_per_epoch: int, bad_train: BadImageRecord, processes: int,
                 micro_batch: int) -> None:
        self.trainer, self.steps_per_epoch, self.bad_train = trainer, steps_per_epoch, bad_train
        self.processes, self.micro_batch = processes, micro_batch
        self.stopped_by: str | None = None
        self.history: list[EvalRecord] = []
        self.best_metric = -math.inf
        self.attempts: list[dict[str, Any]] = []
        self.resumed_at = 0
        self.start = time.perf_counter()

    def restart_clock(self) -> None:
        self.start = time.perf_counter()

    def wall_s(self) -> float:
        """Seconds of training kept, over every attempt (an attempt's time after its last checkpoint
        was lost with it and is trained again)."""
        return sum(a["wall_s"] for a in self.attempts) + time.perf_counter() - self.start

    def all_attempts(self) -> list[dict[str, Any]]:
        """Earlier attempts and this one (so far): the step range each trained and its seconds."""
        this = {"from_step": self.resumed_at, "to_step": self.trainer.step, "wall_s": time.perf_counter() - self.start,
                "processes": self.processes, "micro_batch": self.micro_batch,
                **({"stopped_by": self.stopped_by} if self.stopped_by else {})}
        return [*self.attempts, this]

    def state_dict(self) -> dict[str, Any]:
        step = self.trainer.step
        return {
            "progress": {"step": step, "samples": self.trainer.samples, "epoch": step / self.steps_per_epoch,
                         "wall_s": self.wall_s(), "best_metric": self.best_metric, "attempts": self.all_attempts()},
            "history": [dataclasses.asdict(r) for r in self.history],
            "bad_images": self.bad_train.gather(),  # training files skipped so far, so a resumed run counts them
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        progress = state["progress"]
        self.trainer.step = self.resumed_at = progress["step"]
        self.attempts = list(progress.get("attempts") or [{"from_step": 0, "to_step": self.trainer.step,
                                                            "wall_s": progress["wall_s"]}])
        self.best_metric = progress["best_metric"]
        self.history = [EvalRecord(**r) for r in state["history"]]
        self.bad_train.paths.update(state.get("bad_images", {}))


class ProcessStates:
    """This process's random number generators and loss windows, saved for every rank."""

    def __init__(self, rank: int) -> None:
        self.rank = rank
        self.losses = LossWindows()

    def state_dict(self) -> dict[str, Any]:
        ranks = all_gather_objects({"rng": capture_rng_state(), "losses": dataclasses.asdict(self.losses)})
        return {"rng": [r["rng"] for r in ranks], "losses": [r["losses"] for r in ranks]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        ranks = state["rng"]
        restore_rng_state(ranks[self.rank] if self.rank < len(ranks) else ranks[0])
        windows = state.get("losses") or []
        if self.rank < len(windows):
            self.losses = LossWindows(**windows[self.rank])
