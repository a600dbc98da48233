"""The side-by-side benchmark on one CUDA GPU, in at most --time-budget seconds; installs nothing.

Phases, each its own interleaved run (this project's `xception`, timm's `legacy_xception`,
torchvision's `inception_v3`; AMP bf16, channels_last or contiguous as measured, cudnn.benchmark):
eager training, eager inference, compiled inference, compiled training. Before each phase the
script estimates its cost from the phases already run and skips it (saying so) if it would
overrun the budget; results are written after every phase, so whatever ran is kept. Writes
`gpu.md` and `gpu.json` to --out and prints the markdown.

    bash benchmarks/gpu.sh OUT_DIR                    # on the H100: python benchmarks/gpu.py --out OUT_DIR
    python benchmarks/gpu.py --device cpu --smoke --out /tmp/gpu-smoke   # the code path on a CPU
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from xception.bench import BenchConfig, BenchResult, run_benchmark
from xception.bench.report import machine_line, markdown_table, peaks_table, ratios_table

log = logging.getLogger("benchmarks.gpu")
MODELS = ("xception", "timm:legacy_xception", "torchvision:inception_v3")


@dataclass(frozen=True)
class Phase:
    name: str
    mode: str
    compile: bool


PHASES = (
    Phase("eager training", "train", False),
    Phase("eager inference", "infer", False),
    Phase("compiled training", "train", True),
    Phase("compiled inference", "infer", True),
)
# torch.compile cost per model on a GPU host, assumed until one has been measured (seconds): one
# H100 host (16 CPU cores, torch 2.11) took 86 s to prepare compiled xception training, 46 s for
# timm's, and 26 / 17 / 33 s for the three compiled inference models.
ASSUMED_COMPILE_S = {"train": 90.0, "infer": 40.0}


def estimate_seconds(phase: Phase, done: dict[str, float], compile_s: dict[str, float], models: int) -> float:
    """Cost of `phase`: its eager counterpart's time (x1.2) plus, if compiled, the compile time
    per model (measured in an earlier compiled phase of the same mode, else the assumption)."""
    eager = done.get(f"eager {'training' if phase.mode == 'train' else 'inference'}")
    base = 1.2 * eager if eager is not None else 0.0
    if not phase.compile:
        return base
    per_model = compile_s.get(phase.mode, ASSUMED_COMPILE_S[phase.mode])
    return base + per_model * models


def write_outputs(out: Path, results: list[tuple[Phase, BenchResult]], skipped: list[str], command: str) -> str:
    sections = [f"# GPU benchmarks\n\nProduced by `{command}`.\n"]
    if results:
        sections.append(f"Machine: {machine_line(results[0][1])}.\n")
    for phase, result in results:
        c = result.config
        sections.append(
            f"## {phase.name}\n\n{c.image_size} px, batch {c.batch_size}, {c.repeats} interleaved rounds of "
            f"{c.iterations} steps, medians.\n\n{markdown_table(result)}\n\n{peaks_table(result)}\n\n"
            f"{ratios_table(result, MODELS[0])}\n"
        )
    if skipped:
        sections.append("Skipped to stay within the time budget: " + ", ".join(skipped) + ".\n")
    text = "\n".join(sections)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu.md").write_text(text)
    payload = dict(phases=[dict(phase=p.name, result=r.to_dict()) for p, r in results], skipped=skipped)
    (out / "gpu.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--time-budget", type=float, default=450.0, help="seconds; phases that would overrun are skipped")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=299)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and one round: checks the code path")
    parser.add_argument("--phases", help="comma-separated phases to run, in this order (default: all four: "
                        + ", ".join(p.name for p in PHASES) + ")")
    args = parser.parse_args(argv)
    by_name = {p.name: p for p in PHASES}
    wanted = [name.strip() for name in args.phases.split(",")] if args.phases else list(by_name)
    unknown = [name for name in wanted if name not in by_name]
    if unknown:
        parser.error(f"unknown phase(s) {unknown}; valid: {', '.join(by_name)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    start = time.perf_counter()
    models = ("xception_small",) if args.smoke else MODELS
    command = "python benchmarks/gpu.py " + " ".join(argv if argv is not None else sys.argv[1:])
    results: list[tuple[Phase, BenchResult]] = []
    skipped: list[str] = []
    done: dict[str, float] = {}
    compile_s: dict[str, float] = {}
    for phase in (by_name[name] for name in wanted):
        left = args.time_budget - (time.perf_counter() - start)
        needed = estimate_seconds(phase, done, compile_s, len(models))
        if needed > left:
            log.info("skipping %s: needs about %.0f s, %.0f s left", phase.name, needed, left)
            skipped.append(f"{phase.name} (about {needed:.0f} s needed, {left:.0f} s left)")
            continue
        log.info("%s (about %.0f s left)", phase.name, left)
        phase_start = time.perf_counter()
        config = BenchConfig(
            models=models,
            batch_size=2 if args.smoke else args.batch_size,
            image_size=32 if args.smoke else args.image_size,
            precisions=("bf16",),
            modes=(phase.mode,),  # type: ignore[arg-type]
            layout="best",
            compile=phase.compile,
            fuse=True,
            compile_ours_inference=False,  # eager phases compare eager with eager
            threads=None,
            iterations=1 if args.smoke else args.iterations,
            repeats=1 if args.smoke else args.repeats,
            warmup=0 if args.smoke else 3,
            device=args.device,
        )
        result = run_benchmark(config)
        results.append((phase, result))
        done[phase.name] = time.perf_counter() - phase_start
        if phase.compile:
            # Per model, the whole phase's wall time: building, compiling, autotuning and warming up
            # (on one H100, compiling xception's training step took 86 s of wall time against 13 s
            # for its inference, so one mode's figure says nothing about the other's).
            compile_s[phase.mode] = done[phase.name] / len(models)
        write_outputs(args.out, results, skipped, command)
    print(write_outputs(args.out, results, skipped, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
