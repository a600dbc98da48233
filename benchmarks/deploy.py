"""The deployment benchmark of issue 13: this project's CPU inference against onnxruntime and OpenVINO.

In one process, every runtime fed the project's own ONNX export of `xception` (BatchNorm folded),
299 px, batch 16, 2 threads, 5 rounds in which every runtime and precision runs in turn (fp32,
bf16 and int8 interleaved), median images/s, each with its output error against eager PyTorch
fp32 on the same batch:

- PyTorch, the fastest path: BatchNorm folded, channels_last, inductor with freezing (fp32, bf16);
  int8 through PT2E with the X86 inductor quantizer;
- onnxruntime's CPU provider (fp32; it has no bf16 and runs int8 only from a QDQ model);
- OpenVINO (INFERENCE_PRECISION_HINT fp32 and bf16; int8 through NNCF, the rest bf16).

The weights are random with BatchNorm statistics from the batch, and int8 calibrates on 16 other
random images; `xception quantize` measures what int8 costs on real data. Writes a markdown table
and JSON, and checks the ratios against issue 13's bars. Usage (from the repository root):

    .venv/bin/python benchmarks/deploy.py                 # ~15 min on 2 cores: run it on a quiet machine
    .venv/bin/python benchmarks/deploy.py --smoke --out /tmp/deploy   # the code path, in a minute
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

from xception.bench import BenchConfig, BenchResult, run_benchmark
from xception.bench.report import machine_line, markdown_table, to_json

OURS = "xception"
RUNTIMES = ("onnxruntime", "openvino")
# Issue 13's bars: the default CPU path at least OpenVINO's speed at the same precision; int8 at
# least 1.4x the best bf16 path.
SAME_PRECISION_BAR = 1.0
INT8_OVER_BF16_BAR = 1.4


def _by_precision(result: BenchResult) -> dict[str, dict[str, object]]:
    """precision -> {runtime: row}."""
    table: dict[str, dict[str, object]] = {}
    for row in result.rows:
        table.setdefault(row.precision, {})[row.runtime] = row
    return table


def _per_round_ratio(numerator, denominator) -> float:
    """The median over rounds of numerator/denominator throughput (the rounds share their load)."""
    ratios = sorted(b / a for a, b in zip(numerator.round_seconds, denominator.round_seconds, strict=True))
    return ratios[len(ratios) // 2]


def bars_table(result: BenchResult, *, native_bf16: bool, vnni: bool) -> str:
    """Each bar of issue 13 with the ratios of this run (of medians, and the median per-round ratio)."""
    from xception.deploy.choice import choose_runtime

    table = _by_precision(result)
    lines = ["| bar | target | ratio of medians | median per-round ratio | met (both) |", "|---|---:|---:|---:|---|"]

    def line(text: str, numerator, denominator, target: float, held: bool) -> None:
        ratio = numerator.images_per_s / denominator.images_per_s
        per_round = _per_round_ratio(numerator, denominator)
        met = ("yes" if min(ratio, per_round) >= target else "no") if held else "not held (no native support)"
        lines.append(f"| {text} | {target:.2f}x | {ratio:.2f}x | {per_round:.2f}x | {met} |")

    for precision in ("fp32", "bf16"):
        rows = table.get(precision, {})
        openvino = rows.get("openvino")
        if openvino is None:
            continue
        default = choose_runtime("cpu", precision=precision).runtime
        held = precision == "fp32" or native_bf16
        if "torch" in rows:
            line(f"{precision}: PyTorch's fastest path / OpenVINO", rows["torch"], openvino, SAME_PRECISION_BAR, held)
        if default in rows:
            line(f"{precision}: the default (`{default}`) / OpenVINO", rows[default], openvino, SAME_PRECISION_BAR, held)
    int8, bf16 = table.get("int8", {}), table.get("bf16", {})
    if int8 and bf16:
        best_int8 = max(int8.values(), key=lambda r: r.images_per_s)
        best_bf16 = max(bf16.values(), key=lambda r: r.images_per_s)
        line(f"int8 (`{best_int8.model}`) / the best bf16 (`{best_bf16.model}`)", best_int8, best_bf16,
             INT8_OVER_BF16_BAR, native_bf16 and vnni)
    return "\n".join(lines)


def deploy_markdown(result: BenchResult, command: str) -> str:
    from xception.runtime import cpu_flags

    native_bf16 = result.machine["native_bf16"]
    vnni = any(flag in cpu_flags() for flag in ("avx512_vnni", "avx_vnni", "amx_int8"))
    c = result.config
    return f"""# Deployment runtimes on the CPU

Produced by `{command}` ({result.machine['date']}).

Machine: {machine_line(result)}; VNNI: {'yes' if vnni else 'no'}.

Protocol: {c.image_size} px, batch {c.batch_size}, {c.threads} threads; random weights with BatchNorm
statistics from the batch; every runtime runs the project's ONNX export (BatchNorm folded); int8
calibrates on {c.batch_size} other random images. {c.repeats} rounds in which every runtime and
precision runs {c.iterations} step(s) in turn; medians over the rounds. "Error" is the largest
logit difference from eager PyTorch fp32 on the same batch, over the largest logit.
Where a CPU has no native bf16 or no VNNI, those bars are reported and not held.

{markdown_table(result)}

## Against issue 13's bars

{bars_table(result, native_bf16=native_bf16, vnni=vnni)}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/deploy"),
                        help="writes OUT.md and OUT.json")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=299)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--precisions", nargs="+", choices=("fp32", "bf16", "int8"), default=["fp32", "bf16", "int8"])
    parser.add_argument("--smoke", action="store_true",
                        help="xception_small at 32 px, batch 2, one round, no compilation: checks the code path")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    model = "xception_small" if args.smoke else OURS
    config = BenchConfig(
        models=(model, *(f"{runtime}:{model}" for runtime in RUNTIMES)),
        batch_size=2 if args.smoke else args.batch_size,
        image_size=32 if args.smoke else args.image_size,
        precisions=tuple(args.precisions),
        modes=("infer",),
        layout="channels_last",
        compile=False,
        fuse=True,
        compile_ours_inference=not args.smoke,
        threads=args.threads,
        iterations=1 if args.smoke else args.iterations,
        repeats=1 if args.smoke else args.repeats,
        warmup=0 if args.smoke else 1,
        device="cpu",
        measure_peak=False,
        measure_memory=False,
        interleave_precisions=True,
    )
    command = " ".join(shlex.quote(a) for a in ["python", "benchmarks/deploy.py", *(argv if argv is not None else sys.argv[1:])])
    result = run_benchmark(config)
    result.machine["command"] = command
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(to_json(result) + "\n")
    args.out.with_suffix(".md").write_text(deploy_markdown(result, command))
    print(args.out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
