"""TensorBoard: event files in `run_dir/tensorboard`, through torch's `SummaryWriter`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from xception.train.trackers import Tracker

LOG_DIR = "tensorboard"  # inside the run directory (xception.train.run_directory.OUTPUTS)


class TensorBoardTracker(Tracker):
    name = "tensorboard"

    def __init__(self, writer: Any, *, continued: bool) -> None:
        self.writer, self.continued = writer, continued

    @classmethod
    def check(cls, *, fresh: bool) -> None:
        """Nothing to reach: the event files are the run directory's."""

    @classmethod
    def open(cls, run_dir: Path, *, run_name: str, earlier: dict[str, Any] | None,
             first_step: int | None) -> TensorBoardTracker:
        from torch.utils.tensorboard import SummaryWriter

        # purge_step: TensorBoard hides the events an earlier attempt logged from the step this one
        # logs again (the steps after its checkpoint).
        writer = SummaryWriter(str(run_dir / LOG_DIR), purge_step=first_step)
        return cls(writer, continued=earlier is not None)

    def state(self) -> dict[str, Any]:
        return {"log_dir": LOG_DIR}

    def log_params(self, params: dict[str, Any]) -> None:
        # add_hparams would write a second run beside this one; the config as text stays with it.
        self.writer.add_text("config", "```\n" + json.dumps(params, indent=1) + "\n```", 0)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)

    def log_image(self, path: Path, step: int) -> None:
        import numpy as np
        from PIL import Image

        pixels = np.asarray(Image.open(path).convert("RGB"))
        self.writer.add_image(path.stem, pixels, step, dataformats="HWC")

    def log_file(self, path: Path) -> None:
        """TensorBoard keeps no files: the weights stay in the run directory beside the event files."""

    def close(self, outcome: str) -> None:
        self.writer.close()
