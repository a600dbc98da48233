"""Where a training (and inference) step's time goes on this CPU, and how fast it could possibly get.

For this project's Xception, timm's legacy_xception and torchvision's inception_v3 (299 px,
batch 16, channels_last, each precision; training, and eager inference with our BatchNorm folded),
all warmed up first, then in interleaved rounds one step of each is profiled (torch.profiler, per-operator self time grouped by
`xception.bench.breakdown`) and one timed unprofiled (medians over rounds); the dense
convolution peak is measured in the same process. From these, the ceiling: to be `bar` times as
fast as a rival, our step may take at most rival step / bar; our dense convolutions alone need
their FLOPs / (the rival's own dense-convolution GFLOP/s), or / the measured peak at best; the
difference is all the time BatchNorm, depthwise convolutions, activations, pooling and the
optimizer may take together. A negative budget means no change outside the dense convolution
kernels can meet the bar. Usage:

    .venv/bin/python benchmarks/cpu_breakdown.py --threads 1     # ~5 min; one idle core suffices
    .venv/bin/python benchmarks/cpu_breakdown.py --smoke --out /tmp/b   # the code path, seconds
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from xception.bench.breakdown import CATEGORIES, ceiling, dense_convolution_gflop, profile_step
from xception.bench.contenders import build_model, parse_contender, prepare_for_inference
from xception.bench.peak import measure_peak
from xception.bench.steps import make_step
from xception.bench.suite import describe_machine
from xception.runtime import retain_freed_memory

OURS, TIMM, TORCHVISION = "xception", "timm:legacy_xception", "torchvision:inception_v3"
# Issue 4's bars: this project's Xception over each rival, same precision, per mode.
BARS = {"train": ((TIMM, 1.4), (TORCHVISION, 0.9)), "infer": ((TIMM, 1.3),)}


def measure(mode: str, precision: str, *, batch_size: int, image_size: int, repeats: int) -> list[dict]:
    """Every contender's breakdown and step time in `mode` and `precision`: all built and warmed up
    first, then `repeats` interleaved rounds (one profiled and one timed step per model per round),
    medians. Inference is eager, ours with BatchNorm folded into the convolutions."""
    steps, dense = {}, {}
    for spec in (OURS, TIMM, TORCHVISION):
        contender = parse_contender(spec)
        model = build_model(contender, num_classes=1000)
        passes = 3 if mode == "train" else 1  # forward; + gradients of the inputs and of the weights
        dense[spec] = passes * dense_convolution_gflop(model, batch_size=batch_size, image_size=image_size)
        if mode == "infer":
            model = prepare_for_inference(model, contender, fuse=True)
        steps[spec] = make_step(model, training=mode == "train", batch_size=batch_size, image_size=image_size,
                                num_classes=1000, precision=precision, channels_last=True, compile=False,
                                device=torch.device("cpu"))
    for _ in range(2):
        for step in steps.values():
            step()
    profiles: dict[str, list[dict[str, float]]] = {spec: [] for spec in steps}
    times: dict[str, list[float]] = {spec: [] for spec in steps}
    for round_ in range(repeats):
        for spec, step in steps.items():
            print(f"{precision} round {round_ + 1}/{repeats}: {spec}", file=sys.stderr, flush=True)
            profiles[spec].append(profile_step(step, repeats=1, warmup=False))
            start = time.perf_counter()
            step()
            times[spec].append(time.perf_counter() - start)
    return [
        dict(model=spec, mode=mode, precision=precision, step_s=statistics.median(times[spec]),
             breakdown={key: statistics.median(p[key] for p in profiles[spec]) for key in profiles[spec][0]},
             dense_gflop_per_step=dense[spec])
        for spec in steps
    ]


def markdown(rows: list[dict], peaks: dict[str, float], header: str) -> str:
    lines = [header, "", "Seconds of operator self time per step (share of the profiled total):", ""]
    lines.append("| mode | precision | model | step (s) | " + " | ".join(CATEGORIES) + " |")
    lines.append("|---|---|---|---:|" + "---:|" * len(CATEGORIES))
    for r in rows:
        total = r["breakdown"]["total"]
        cells = [f"{r['breakdown'][c]:.2f} ({100 * r['breakdown'][c] / total:.0f}%)" for c in CATEGORIES]
        lines.append(f"| {r.get('mode', 'train')} | {r['precision']} | `{r['model']}` | {r['step_s']:.2f} | "
                     + " | ".join(cells) + " |")
    lines += ["", "The ceiling: the longest our step may take to meet the bar, the time our dense convolutions "
              "need at the rival's own dense-convolution speed and at the measured peak, and what that leaves "
              "for everything else (BatchNorm, depthwise, activations, pooling, optimizer), against what "
              "everything else takes now:", "",
              "| mode | precision | rival | rival step (s) | bar | our step allowed (s) | our dense at rival's "
              "GFLOP/s (s) | ... at the peak (s) | left for the rest (s) | ... at the peak (s) | the rest now (s) |",
              "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for mode, precision in sorted({(r.get("mode", "train"), r["precision"]) for r in rows}, reverse=True):
        by_model = {r["model"]: r for r in rows if (r.get("mode", "train"), r["precision"]) == (mode, precision)}
        ours = by_model.get(OURS)
        if ours is None:
            continue
        # The profiled step runs slower than the timed one: take the rest's share of the profile.
        rest_now = ours["step_s"] * (1 - ours["breakdown"]["dense convolution"] / ours["breakdown"]["total"])
        for rival, bar in BARS[mode]:
            if rival not in by_model:
                continue
            r = by_model[rival]
            bound = ceiling(ours["dense_gflop_per_step"], rival_step_s=r["step_s"], bar=bar,
                            rival_dense_gflops=r["dense_gflop_per_step"] / r["breakdown"]["dense convolution"],
                            peak_gflops=peaks[precision])
            lines.append(
                f"| {mode} | {precision} | `{rival}` | {r['step_s']:.2f} | {bar:.2f}x | {bound.allowed_step_s:.2f} | "
                f"{bound.dense_at_rival_speed_s:.2f} | {bound.dense_at_peak_s:.2f} | "
                f"{bound.allowed_step_s - bound.dense_at_rival_speed_s:.2f} | "
                f"{bound.allowed_step_s - bound.dense_at_peak_s:.2f} | {rest_now:.2f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/cpu_breakdown"),
                        help="writes OUT.md and OUT.json (default benchmarks/results/cpu_breakdown)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--precisions", default="bf16,fp32")
    parser.add_argument("--modes", default="train,infer", help="train, infer or both (default)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=299)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="96 px, batch 2, one repeat: checks the code path")
    parser.add_argument("--from-json", type=Path, metavar="PATH",
                        help="rewrite OUT.md from an earlier run's JSON instead of measuring")
    args = parser.parse_args(argv)
    if args.from_json:
        data = json.loads(args.from_json.read_text())
        header = data.get("header") or f"# Training step breakdown\n\nProduced by `{data['command']}`."
        args.out.with_suffix(".md").write_text(markdown(data["rows"], data["peaks"], header))
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.smoke:
        args.batch_size, args.image_size, args.repeats = 2, 96, 1
    precisions = [p.strip() for p in args.precisions.split(",")]
    modes = [m.strip() for m in args.modes.split(",")]
    if not set(modes) <= {"train", "infer"}:
        parser.error(f"--modes must list train and/or infer, got {args.modes!r}")
    device = torch.device("cpu")
    retained = retain_freed_memory()  # as `xception train` and the bench run, for every model alike
    rows, peaks = [], {}
    for precision in precisions:
        peaks[precision] = measure_peak(device, precision=precision, iterations=1 if args.smoke else 3)["peak"]
        for mode in modes:
            rows += measure(mode, precision, batch_size=args.batch_size, image_size=args.image_size,
                            repeats=args.repeats)
    machine = describe_machine(device)
    machine["freed_memory_retained"] = retained
    command = "python benchmarks/cpu_breakdown.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    header = (f"# Training step breakdown\n\nProduced by `{command}` on "
              f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}: {machine.get('cpu')}, "
              f"{torch.get_num_threads()} torch thread(s), torch {torch.__version__}; {args.image_size} px, batch "
              f"{args.batch_size}, channels_last, models warmed up together then {args.repeats} interleaved "
              f"rounds, medians; freed memory kept for reuse: {retained}.")
    text = markdown(rows, peaks, header)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps(dict(command=command, header=header, machine=machine,
                                                             peaks=peaks, rows=rows), indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
