"""The CPU benchmark of issue 4: writes BENCHMARKS.md and a JSON file.

This project's Xception (its best settings: bf16/fp32 autocast, channels_last, BatchNorm folded
and inductor-compiled for inference), timm's legacy_xception and torchvision's inception_v3, each
in its best memory layout, interleaved in the same run, median of repeats, with the machine's
measured convolution peak; at inference also this project's ONNX export in onnxruntime and
OpenVINO, and int8 (PT2E, NNCF), where installed (else the rows say what to install), each with
its error against eager fp32 (`--no-runtimes` leaves them out; `benchmarks/deploy.py` is the
deployment comparison on its own). Usage (from the repository root):

    .venv/bin/python benchmarks/cpu.py                 # 299 px, batch 16: ~20 min on 2 busy cores
    .venv/bin/python benchmarks/cpu.py --smoke --out /tmp/b.md --json /tmp/b.json
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from pathlib import Path

from xception.bench import BenchConfig, BenchResult, run_benchmark
from xception.bench.report import machine_line, markdown_table, peaks_table, ratios, ratios_table, to_json

OURS, TIMM, TORCHVISION = "xception", "timm:legacy_xception", "torchvision:inception_v3"
RUNTIMES = ("onnxruntime:xception", "openvino:xception")
# Issue 4's bars, all ratios measured side by side at 299 px, batch 16.
TARGETS = (
    ("train", "fp32", TIMM, 1.4),
    ("train", "bf16", TIMM, 1.4),
    ("infer", "fp32", TIMM, 1.3),
    ("infer", "bf16", TIMM, 1.3),
    ("train", "fp32", TORCHVISION, 0.9),
    ("train", "bf16", TORCHVISION, 0.9),
)
PEAK_TARGET_PERCENT = 70.0  # bf16 training, of the measured bf16 peak


def targets_table(result: BenchResult) -> str:
    measured = {(r["mode"], r["precision"], r["denominator"]): r for r in ratios(result, OURS)}
    lines = [
        "| bar | target | ratio of medians | median per-round ratio | met (both) |",
        "|---|---:|---:|---:|---|",
    ]
    for mode, precision, other, target in TARGETS:
        r = measured.get((mode, precision, other))
        if r is None:
            continue
        met = "yes" if min(r["ratio"], r["per_round_ratio"]) >= target else "no"
        lines.append(
            f"| {mode} {precision}: `{OURS}` / `{other}` | {target:.2f}x | {r['ratio']:.2f}x | "
            f"{r['per_round_ratio']:.2f}x | {met} |"
        )
    for row in result.rows:
        if (row.model, row.mode, row.precision) == (OURS, "train", "bf16") and row.percent_of_peak is not None:
            met = "yes" if row.percent_of_peak >= PEAK_TARGET_PERCENT else "no"
            lines.append(f"| bf16 training, % of measured bf16 peak | {PEAK_TARGET_PERCENT:.0f}% | {row.percent_of_peak:.0f}% | {met} |")
    return "\n".join(lines)


def benchmarks_markdown(result: BenchResult, command: str) -> str:
    m = result.machine
    bf16_note = (
        "This CPU computes bf16 natively (avx512_bf16/AMX), so the bf16 rows are held to the bars."
        if m["native_bf16"]
        else "This CPU has no native bf16 (no avx512_bf16 or AMX): the bf16 rows are reported but not held to the bars."
    )
    c = result.config
    layout_text = (
        "its best memory layout (one timed step in each, the faster kept)"
        if c.layout == "best"
        else f"{c.layout} layout (fixed by --layout)"
    )
    return f"""# Benchmarks

Produced by `{command}` ({m['date']}).

Machine: {machine_line(result)}.

Protocol: {c.image_size} px, batch {c.batch_size}; every model is built, put in {layout_text}
and warmed up, then {c.repeats} interleaved rounds
of {c.iterations} step(s) per model run, with the convolution peak measured in each round; the
table gives medians over the rounds. A training step is `xception train`'s own (`Trainer`): forward
under autocast, cross-entropy in fp32, backward and an SGD update; its FLOPs are counted as 3x the forward pass. Peak memory is the live
tensor memory a step adds (profiler allocation events; not measurable for inductor-compiled CPU
code). Other processes shared these cores (load average above): absolute figures are depressed
and vary from round to round. "Best round" is each model's fastest round (load only adds time);
the "median of per-round ratios" compares models within each round, which shares its load, and is
the figure to trust when the two statistics disagree. "% of peak" divides by the median peak
measured in the same rounds; it exceeds 100% when the load fell between the two. {bf16_note}
{"The process keeps freed memory for reuse (`xception.runtime.retain_freed_memory`, glibc), for every model alike, as `xception train` does." if result.machine.get("freed_memory_retained") else ""}

{markdown_table(result)}

Measured peak (dense convolutions, channels_last, same autocast):

{peaks_table(result)}

## Against issue 4's bars

{targets_table(result)}

All ratios of `{OURS}`:

{ratios_table(result, OURS)}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("BENCHMARKS.md"))
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/cpu.json"))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=299)
    parser.add_argument("--iterations", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--layout", choices=("best", "channels_last", "contiguous"), default="best",
                        help="'best' times one step in each layout per model and keeps the faster")
    parser.add_argument("--smoke", action="store_true", help="75 px, batch 2, one round: checks the code path")
    parser.add_argument("--no-runtimes", dest="runtimes", action="store_false",
                        help="leave out the onnxruntime, OpenVINO and int8 inference rows")
    parser.add_argument("--from-json", type=Path, default=None, metavar="PATH",
                        help="rewrite --out from an earlier run's JSON instead of measuring")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    smoke = args.smoke
    config = BenchConfig(
        models=(OURS, TIMM, TORCHVISION, *(RUNTIMES if args.runtimes else ())),
        batch_size=2 if smoke else args.batch_size,
        image_size=75 if smoke else args.image_size,
        precisions=("fp32", "bf16", *(("int8",) if args.runtimes else ())),
        modes=("train", "infer"),
        layout=args.layout,
        compile=False,
        fuse=True,
        compile_ours_inference=not smoke,
        threads=args.threads,
        iterations=1 if smoke else args.iterations,
        repeats=1 if smoke else args.repeats,
        warmup=0 if smoke else 1,
        device="cpu",
    )
    command = " ".join(shlex.quote(a) for a in ["python", "benchmarks/cpu.py", *(argv or sys.argv[1:])])
    if args.from_json is not None:
        result = BenchResult.from_dict(json.loads(args.from_json.read_text()))
        command = f"{result.machine.get('command', 'benchmarks/cpu.py')}`, tables rewritten by `{command}"
    else:
        result = run_benchmark(config)
        result.machine["command"] = command
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(to_json(result) + "\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # The hand-written "## Notes" (and what follows) of an existing file survive a rewrite.
    old = args.out.read_text() if args.out.exists() else ""
    notes = "\n## Notes" + old.split("\n## Notes", 1)[1] if "\n## Notes" in old else ""
    args.out.write_text(benchmarks_markdown(result, command) + notes)
    print(args.out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
