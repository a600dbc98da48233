"""A comparison on SLURM: every (arm, seed) not finished yet as one task of a job array, and the
report as a job that starts when all of them have succeeded (docs/clusters.md, "Experiments").

Each task runs `xception experiment NAME ... --arm ARM --seed SEED`, which trains into the same run
directory as the sequential command would (`runs_dir/<model>-<config hash>/seed<k>`), so the cache of
finished runs serves both: a second submission skips what is done, and `xception experiment NAME
... --report` (the dependent job) reads the runs as the sequential command does.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from xception.atomic_write import write_text_atomic
from xception.experiments.arms import resolve_arms
from xception.experiments.comparison import build_comparison_data, previous_record
from xception.experiments.definition import Comparison
from xception.experiments.scales import Scale


@dataclass(frozen=True)
class Submission:
    """What was submitted: the array's job id (None when every run had finished), its (arm, seed)
    tasks in task order, the report job's id and the array script."""

    array_job: str | None
    tasks: tuple[tuple[str, int], ...]
    report_job: str
    script: Path


def pending_tasks(comparison: Comparison, scale: Scale, *, seeds: tuple[int, ...], runs_dir: Path,
                  device: str | None, data_path: str | None) -> list[tuple[str, int]]:
    """The (arm, seed) pairs without a finished run, seed-major as the sequential command trains them."""
    data = build_comparison_data(comparison, scale, data_path=data_path)
    arms = resolve_arms(comparison, scale, num_classes=data.datasets.num_classes, in_channels=data.config.in_channels)
    return [(arm.label, seed) for seed in seeds for arm in arms
            if previous_record(comparison, scale, arm, seed=seed, runs_dir=runs_dir, device=device,
                               data_path=data_path) is None]


def array_script(name: str, tasks: list[tuple[str, int]], *, arguments: list[str], log_dir: Path) -> str:
    """An sbatch script whose task i trains `tasks[i]`: `xception experiment NAME ARGUMENTS --arm A --seed S`."""
    table = "\n".join(f"    {shlex.quote(arm)} {seed}" for arm, seed in tasks)
    return f"""#!/bin/bash
# Written by `xception experiment {name} --launcher slurm`: one task per (arm, seed) not finished yet.
#SBATCH --job-name=xception-{name}
#SBATCH --array=0-{len(tasks) - 1}
#SBATCH --ntasks=1
#SBATCH --output={log_dir}/%x-%A_%a.out
set -euo pipefail
tasks=(
{table}
)
arm=${{tasks[$((2 * SLURM_ARRAY_TASK_ID))]}}
seed=${{tasks[$((2 * SLURM_ARRAY_TASK_ID + 1))]}}
exec xception experiment {shlex.join([name, *arguments])} --arm "$arm" --seed "$seed"
"""


def submit_experiment(comparison: Comparison, scale: Scale, *, seeds: tuple[int, ...], runs_dir: Path,
                      out_dir: Path, arguments: list[str], device: str | None, data_path: str | None,
                      sbatch_options: list[str]) -> Submission:
    """Submit the pending (arm, seed) tasks as an array and the report as a job depending on it.

    `arguments` are those of `xception experiment NAME` that every task and the report share (scale,
    --set, --runs-dir, --out, --device, --threads, --data); `sbatch_options` go to both sbatch calls
    (a partition, a time limit, GPUs). The script and the jobs' output go to `out_dir/slurm/`.
    """
    name = comparison.name
    tasks = pending_tasks(comparison, scale, seeds=seeds, runs_dir=runs_dir, device=device, data_path=data_path)
    log_dir = (out_dir / "slurm").resolve()
    log_dir.mkdir(parents=True, exist_ok=True)
    script = log_dir / f"{name}-array.sbatch"
    array_job = None
    dependency: list[str] = []
    if tasks:
        write_text_atomic(script, array_script(name, tasks, arguments=arguments, log_dir=log_dir))
        array_job = _sbatch([*sbatch_options, str(script)])
        dependency = [f"--dependency=afterok:{array_job}"]
    report = shlex.join(["xception", "experiment", name, *arguments, "--seeds", str(len(seeds)), "--report"])
    report_job = _sbatch([*sbatch_options, *dependency, f"--job-name=xception-{name}-report",
                          f"--output={log_dir}/%x-%j.out", f"--wrap={report}"])
    return Submission(array_job, tuple(tasks), report_job, script)


def _sbatch(arguments: list[str]) -> str:
    """`sbatch --parsable ARGUMENTS`: the job id, or the error sbatch gave."""
    try:
        done = subprocess.run(["sbatch", "--parsable", *arguments], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise FileNotFoundError("sbatch was not found: --launcher slurm needs SLURM's commands on PATH") from None
    if done.returncode != 0:
        raise ValueError(f"sbatch refused the job: {done.stderr.strip()}")
    return done.stdout.strip().split(";")[0]
