"""Weights & Biases: one W&B run per training run, through `wandb.init`. W&B's own settings apply
(`WANDB_MODE=offline` writes the run under `WANDB_DIR` and sends nothing; `WANDB_PROJECT`, default
"xception"); without `WANDB_DIR` the files go into the run directory. A continued run keeps the
run id (`resume="allow"`)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from xception.train.trackers import Tracker

PROJECT = "xception"


class WandbTracker(Tracker):
    name = "wandb"

    def __init__(self, run: Any, *, continued: bool) -> None:
        self.run, self.continued = run, continued

    @classmethod
    def check(cls, *, fresh: bool) -> None:
        """Nothing checked before the start: offline needs no server, and online `wandb.init` says
        itself what is wrong (no API key, no network), which the start of the run then warns."""

    @classmethod
    def open(cls, run_dir: Path, *, run_name: str, earlier: dict[str, Any] | None,
             first_step: int | None) -> WandbTracker:
        import wandb

        directory = os.environ.get("WANDB_DIR") or str(run_dir)
        run = wandb.init(project=(earlier or {}).get("project") or os.environ.get("WANDB_PROJECT") or PROJECT,
                         name=run_name, dir=directory, id=(earlier or {}).get("run_id"),
                         resume="allow" if earlier else None, reinit="create_new")
        return cls(run, continued=earlier is not None)

    def state(self) -> dict[str, Any]:
        return {"run_id": self.run.id, "project": self.run.project, "mode": self.run.settings.mode,
                "dir": str(self.run.dir)}

    def log_params(self, params: dict[str, Any]) -> None:
        self.run.config.update(params, allow_val_change=True)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        # W&B keeps one row per step and drops steps below its last: a continued run's replay of
        # the steps after its checkpoint keeps the earlier attempt's (identical) values.
        self.run.log(metrics, step=step)

    def log_image(self, path: Path, step: int) -> None:
        import wandb

        self.run.log({path.stem: wandb.Image(str(path))}, step=step)

    def log_file(self, path: Path) -> None:
        # A copy in the W&B run's own folder (run.save alone links to the file): an offline run
        # stays whole when the training's run directory moves, and `wandb sync` uploads it later.
        kept = Path(self.run.dir) / path.name
        shutil.copyfile(path, kept)
        self.run.save(str(kept), base_path=self.run.dir, policy="now")

    def close(self, outcome: str) -> None:
        self.run.finish(exit_code=1 if outcome == "failed" else 0)
