"""`run_experiment`: an experiment by name at a scale, from training to the report directory."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from xception.experiments.comparison import run_comparison
from xception.experiments.definition import SpeedTable
from xception.experiments.registry import get_experiment
from xception.experiments.report import write_comparison_report, write_speed_table_report
from xception.experiments.scales import Scale
from xception.experiments.speed_table import run_speed_table
from xception.tracker_names import TrackerName

log = logging.getLogger(__name__)


def run_experiment(
    name: str,
    *,
    scale: Scale,
    seeds: tuple[int, ...],
    out_dir: Path,
    runs_dir: Path,
    command: str,
    device: str | None = None,
    data_path: str | None = None,
    train: bool = True,
    threads: int | None = None,
    trackers: tuple[TrackerName, ...] = (),
) -> Path:
    """Run experiment `name` at `scale` with `seeds` and write its report into `out_dir`; training
    runs go to `runs_dir/<model>-<config hash>/seed<k>` (reused when an identical run finished before,
    in this experiment or another). Table 3
    repeats its measurement once per seed. `threads` sets torch's CPU threads for everything (on a
    busy 2-core machine 1 thread is several times faster than 2 contending ones). `trackers` log each
    training run (`xception.train.trackers`). Returns the path of report.md."""
    if threads is not None:
        torch.set_num_threads(threads)
    experiment = get_experiment(name)
    if isinstance(experiment, SpeedTable):
        run = run_speed_table(experiment, scale, repeats=len(seeds), device=device)
        path = write_speed_table_report(run, out_dir, command=command)
    else:
        comparison_run = run_comparison(experiment, scale, seeds=seeds, runs_dir=runs_dir, device=device,
                                        data_path=data_path, train=train, trackers=trackers)
        path = write_comparison_report(comparison_run, out_dir, command=command)
    log.info("%s: report written to %s", name, path)
    return path
