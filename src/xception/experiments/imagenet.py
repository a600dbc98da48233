"""The ImageNet-size versions of the experiments: the exact commands, one `torchrun` per arm and
seed (full-size networks at 299 px, the paper's recipes), then one command that writes the report."""

from __future__ import annotations

import shlex
from pathlib import Path

from xception.experiments.definition import Comparison, SpeedTable


def imagenet_commands(
    experiment: Comparison | SpeedTable,
    *,
    seeds: tuple[int, ...],
    nproc: int,
    data_path: str,
    runs_dir: Path,
    out_dir: Path,
    settings: tuple[str, ...] = (),
) -> list[str]:
    """Shell commands, in order. Comparisons: `torchrun` for every arm x seed (each process runs
    `xception experiment NAME --scale imagenet --arm A --seed S`, which trains with DDP), then the
    report command (it reuses the finished runs). Table 3: one command on one GPU. `settings` are
    `FIELD=VALUE` overrides of the scale, passed on to every command."""
    name = experiment.name
    common = ["--scale", "imagenet", "--out", str(out_dir), *[f"--set={s}" for s in settings]]
    if isinstance(experiment, SpeedTable):
        return [shlex.join(["xception", "experiment", name, *common, "--device", "cuda", "--seeds", str(len(seeds))])]
    data = ["--data", data_path, "--runs-dir", str(runs_dir)]
    commands = []
    for seed in seeds:
        for arm in experiment.arms:
            commands.append(shlex.join([
                "torchrun", "--standalone", f"--nproc_per_node={nproc}", "--no-python",
                "xception", "experiment", name, *common, *data, "--arm", arm.label, "--seed", str(seed),
            ]))
    commands.append(shlex.join(["xception", "experiment", name, *common, *data, "--seeds", str(len(seeds)),
                                "--report"]))
    return commands


def run_commands(commands: list[str]) -> None:
    """Run `commands` one after the other; stop at the first that fails (CalledProcessError)."""
    import subprocess

    for command in commands:
        print(f"+ {command}", flush=True)
        subprocess.run(shlex.split(command), check=True)
