"""`xception experiment NAME`: rerun one of the paper's experiments and write its report."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from xception.cli.train import add_tracker_option
    from xception.experiments.registry import NAMES

    parser = subparsers.add_parser(
        "experiment",
        help="rerun one of the paper's experiments (tables, figures) with several seeds and write a report",
        description="Train every arm of an experiment with every seed under the same data, recipe and budget "
                    "(or, for table3, time the networks), then write results.json, PNG plots and report.md. "
                    "--scale imagenet prints the torchrun commands of the full-size version (--run runs them).",
    )
    parser.add_argument("name", choices=(*NAMES, "transfer"),
                        help="the experiment; transfer: fine-tuning against scratch on few labelled images "
                        "(xception.experiments.transfer; --set takes its TransferStudy fields)")
    parser.add_argument("--scale", default="quick", choices=("quick", "full", "imagenet"),
                        help="quick: minutes on 2 CPU cores; full: the committed results; imagenet: the paper's size")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds, 0..N-1 (default: the scale's, 3)")
    parser.add_argument("--out", default=None,
                        help="report directory (default: reports/NAME; reports/imagenet/NAME at --scale imagenet)")
    parser.add_argument("--runs-dir", default=None, help="training runs (default: runs/experiments/SCALE, shared by all experiments: an arm that "
                        "several experiments train, such as the Xception baseline, is trained once)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: the GPU if any, else CPU)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's; 1 is fastest on a busy 2-core machine)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a field of the scale, VALUE as JSON (e.g. --set epochs=1 --set train_examples=512)")
    add_tracker_option(parser, default="none")
    parser.add_argument("--rerender", action="store_true",
                        help="write the report in --out (default reports/NAME) again from its results.json, training "
                        "nothing: for a new verdict rule or layout; the numbers, command and date stay the run's")
    parser.add_argument("--launcher", default="local", choices=("local", "slurm"),
                        help="local: train here, one run after another; slurm: submit every (arm, seed) not "
                        "finished yet as a task of a job array, and the report as a job that waits for them")
    parser.add_argument("--slurm-options", default="", metavar="OPTIONS",
                        help="with --launcher slurm: sbatch options for every job, e.g. \"--partition gpu --time 2:00:00\"")
    imagenet = parser.add_argument_group("ImageNet scale")
    imagenet.add_argument("--data", default=None,
                          help="ImageNet-style folder (single-label experiments) or multi-label manifest directory")
    imagenet.add_argument("--nproc", type=int, default=8, help="processes (GPUs) per torchrun command")
    imagenet.add_argument("--run", dest="execute", action="store_true", help="run the printed commands, then write the report")
    imagenet.add_argument("--arm", default=None, help="train only this arm (what each torchrun command does)")
    imagenet.add_argument("--seed", type=int, default=None, help="with --arm: the seed")
    imagenet.add_argument("--report", action="store_true", help="write the report from finished runs, train nothing")
    parser.set_defaults(run=run)


def _overrides(pairs: list[str]) -> dict:
    from xception.config_fields import parse_assignment

    return dict(parse_assignment(pair) for pair in pairs)


def _trackers(args: argparse.Namespace) -> tuple[str, ...]:
    """The --tracker flags (none by default: an experiment's many runs log to their run directories),
    checked before any training."""
    from xception.train.trackers import check_trackers

    trackers = tuple(args.trackers or ())
    check_trackers(trackers, fresh=True)
    return trackers


def run(args: argparse.Namespace) -> int:
    if args.name == "transfer":
        return _run_transfer(args)
    from xception.experiments import get_experiment, get_scale, run_experiment
    from xception.experiments.comparison import train_one
    from xception.experiments.imagenet import imagenet_commands, run_commands

    scale = get_scale(args.scale, **_overrides(args.set))
    seeds = tuple(range(args.seeds if args.seeds is not None else scale.seeds))
    out_dir = Path(args.out or (f"reports/imagenet/{args.name}" if scale.name == "imagenet" else f"reports/{args.name}"))
    runs_dir = Path(args.runs_dir or f"runs/experiments/{scale.name}")
    experiment = get_experiment(args.name)
    if args.rerender:
        from xception.experiments.rerender import rerender_comparison_report

        print(rerender_comparison_report(out_dir, command=shlex.join(
            ["xception", "experiment", args.name, "--out", str(out_dir), "--rerender"])))
        return 0
    if args.arm is not None:
        if args.seed is None:
            raise ValueError("--arm needs --seed")
        if args.threads is not None:  # as run_experiment does: each task of a job array trains as the sequential command
            import torch

            torch.set_num_threads(args.threads)
        record = train_one(experiment, scale, arm=args.arm, seed=args.seed, runs_dir=runs_dir, device=args.device,
                           data_path=args.data, trackers=_trackers(args))
        print(f"{args.arm} seed {args.seed}: {record.test} ({record.run_dir})")
        return 0
    if args.launcher == "slurm":
        return _submit_to_slurm(args, experiment, scale, seeds=seeds, out_dir=out_dir, runs_dir=runs_dir)
    if scale.name == "imagenet" and not args.report and args.device is None:
        if args.name != "table3" and not args.data:
            raise ValueError("--scale imagenet needs --data (an ImageNet-style folder, or a multi-label manifest "
                             "directory for jft_profile and vgg_separable)")
        commands = imagenet_commands(experiment, seeds=seeds, nproc=args.nproc, data_path=args.data or "",
                                     runs_dir=runs_dir, out_dir=out_dir, settings=tuple(args.set))
        print("\n".join(commands))
        if args.execute:
            run_commands(commands)
        return 0
    command = shlex.join(["xception", "experiment", args.name, "--scale", args.scale, "--seeds", str(len(seeds)),
                          "--out", str(out_dir), *[f"--set={pair}" for pair in args.set],
                          *(["--device", args.device] if args.device else []),
                          *(["--threads", str(args.threads)] if args.threads else []),
                          *(["--data", args.data] if args.data else []), *(["--report"] if args.report else [])])
    path = run_experiment(args.name, scale=scale, seeds=seeds, out_dir=out_dir, runs_dir=runs_dir, command=command,
                          device=args.device, data_path=args.data, train=not args.report, threads=args.threads,
                          trackers=() if args.report else _trackers(args))
    print(path)
    return 0


def _submit_to_slurm(args: argparse.Namespace, experiment, scale, *, seeds: tuple[int, ...], out_dir: Path,
                     runs_dir: Path) -> int:
    from xception.experiments.definition import Comparison
    from xception.experiments.slurm_array import submit_experiment

    if not isinstance(experiment, Comparison) or scale.name == "imagenet" or args.report:
        raise ValueError("--launcher slurm trains the (arm, seed) runs of a comparison at --scale quick or full, one "
                         "process each; at --scale imagenet submit the printed torchrun commands (docs/clusters.md)")
    shared = ["--scale", args.scale, "--runs-dir", str(runs_dir), "--out", str(out_dir),
              *[f"--set={pair}" for pair in args.set], *(["--device", args.device] if args.device else []),
              *(["--threads", str(args.threads)] if args.threads else []), *(["--data", args.data] if args.data else []),
              *[f"--tracker={name}" for name in _trackers(args)]]
    submission = submit_experiment(experiment, scale, seeds=seeds, runs_dir=runs_dir, out_dir=out_dir, arguments=shared,
                                   device=args.device, data_path=args.data,
                                   sbatch_options=shlex.split(args.slurm_options))
    if submission.array_job is None:
        print("every run has finished before: no array submitted")
    else:
        print(f"job array {submission.array_job}: {len(submission.tasks)} runs "
              f"({', '.join(f'{arm} seed {seed}' for arm, seed in submission.tasks)}), script {submission.script}")
    print(f"report job {submission.report_job}: writes {out_dir / 'report.md'} once every run has succeeded")
    return 0


def _run_transfer(args: argparse.Namespace) -> int:
    from xception.config_fields import with_overrides
    from xception.errors import UserError
    from xception.experiments.transfer import TransferStudy, run_transfer
    from xception.experiments.transfer_report import write_transfer_report

    overrides = _overrides(args.set)
    fixed = sorted(set(overrides) & {"arms", "ablations"})
    if fixed:
        raise UserError(f"the transfer study's {' and '.join(fixed)} are the experiment itself, not set by --set")
    if args.seeds is not None:
        overrides["seeds"] = overrides["segmentation_seeds"] = args.seeds
    study = with_overrides(TransferStudy(threads=args.threads), overrides, what="transfer study")
    out_dir = Path(args.out or "reports/transfer")
    command = shlex.join(["xception", "experiment", "transfer", "--out", str(out_dir),
                          *(["--seeds", str(args.seeds)] if args.seeds is not None else []),
                          *[f"--set={pair}" for pair in args.set],
                          *(["--threads", str(args.threads)] if args.threads else [])])
    results = run_transfer(study, data_path=args.data, runs=Path(args.runs_dir or "runs/transfer"),
                           trackers=_trackers(args))
    print(write_transfer_report(results, out_dir, command=command))
    return 0
