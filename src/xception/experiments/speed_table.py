"""Run a `SpeedTable` (Table 3): parameter counts, multiply-accumulates and training steps per
second of full-size networks, on every device this machine has, the same batch and precision."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import torch

from xception.experiments.definition import SpeedTable
from xception.experiments.scales import Scale
from xception.experiments.speed import TrainingSpeed, measure_training_speed
from xception.experiments.statistics import Summary, summarize
from xception.models import create_model
from xception.models.complexity import count_macs, count_parameters

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpeedRow:
    """One network on one device: its size and its training speed over `repeats` measurements."""

    model: str
    device: str
    parameters: int
    macs: int
    steps_per_s: Summary
    measurements: tuple[TrainingSpeed, ...]


@dataclass(frozen=True)
class SpeedTableRun:
    table: SpeedTable
    scale: Scale
    rows: tuple[SpeedRow, ...]
    repeats: int
    wall_s: float


def devices(requested: str | None) -> list[torch.device]:
    """The requested device, or the CPU and, when there is one, the GPU."""
    if requested:
        return [torch.device(requested)]
    return [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])


def run_speed_table(table: SpeedTable, scale: Scale, *, repeats: int, device: str | None = None) -> SpeedTableRun:
    """`repeats` interleaved measurements of each model (model A, B, A, B, ...) so that a change in
    the machine's load hits both alike."""
    start = time.perf_counter()
    rows = []
    for device_ in devices(device):
        models = {name: create_model(name, num_classes=table.num_classes) for name in table.models}
        sizes = {name: (count_parameters(m), count_macs(m, table.image_size)) for name, m in models.items()}
        measured: dict[str, list[TrainingSpeed]] = {name: [] for name in table.models}
        for repeat in range(repeats):
            for name, model in models.items():
                log.info("table3: %s on %s, measurement %d of %d", name, device_, repeat + 1, repeats)
                measured[name].append(measure_training_speed(
                    model, model_name=name, recipe="paper_imagenet", batch_size=scale.table3_batch_size,
                    image_size=table.image_size, in_channels=3, num_classes=table.num_classes, device=device_,
                    precision=scale.precision, warmup_steps=scale.speed_warmup_steps, steps=scale.speed_steps,
                ))
        for name in table.models:
            rows.append(SpeedRow(name, device_.type, *sizes[name],
                                 summarize([m.steps_per_s for m in measured[name]]), tuple(measured[name])))
    return SpeedTableRun(table, scale, tuple(rows), repeats, time.perf_counter() - start)
