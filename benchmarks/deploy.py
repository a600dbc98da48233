"""The deployment benchmark (issues 13 and 22): the engines `xception predict` and `eval` build,
timed side by side on the CPU, with the runtime the calibration chooses checked against them.

Every engine is built by `xception.deploy.build.build_engine`, the function `predict` and `eval`
use, so each row is a path a user runs:

- PyTorch eager (BatchNorm folded, channels_last; bf16 weights), what runs when compilation fails;
- PyTorch AOTInductor (the same, inductor with freezing, packaged and cached on disk): what
  `predict` and `eval` run when PyTorch is chosen;
- onnxruntime (CPU provider, fp32) and OpenVINO (fp32, bf16) on the project's ONNX export;
- int8: PyTorch PT2E (X86InductorQuantizer, inductor with freezing), OpenVINO NNCF and
  onnxruntime's own static quantizer (QDQ).

First the calibration of `xception bench --choose` runs (fp32 and bf16 engines, its own timing
budget) and names its choice; then all engines run in the same interleaved rounds (every engine
once per round, the first one rotating), medians per engine, and per-round ratios between rows
that shared each round's load. The load average (`uptime`) is recorded before and after: on a
shared machine a quiet rerun is what makes the figures final.

The weights are random with BatchNorm statistics from a batch of the inputs; int8 calibrates on 16
other random images (`xception quantize` measures what int8 costs on real data). Writes OUT.md
and OUT.json. Usage (from the repository root):

    .venv/bin/python benchmarks/deploy.py                 # ~20 min on 2 cores (compilations included)
    .venv/bin/python benchmarks/deploy.py --smoke --out /tmp/deploy   # the code path, in a few minutes
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import shlex
import statistics
import sys
import tempfile
from pathlib import Path

import torch

# (label, runtime, precision, PyTorch path): every engine a user can get on a CPU.
ENGINES = (
    ("PyTorch eager", "torch", "fp32", "eager"),
    ("PyTorch eager", "torch", "bf16", "eager"),
    ("PyTorch AOTInductor", "torch", "fp32", "aot"),
    ("PyTorch AOTInductor", "torch", "bf16", "aot"),
    ("onnxruntime", "onnxruntime", "fp32", "eager"),
    ("OpenVINO", "openvino", "fp32", "eager"),
    ("OpenVINO", "openvino", "bf16", "eager"),
    ("PyTorch PT2E", "torch", "int8", "eager"),
    ("OpenVINO NNCF", "openvino", "int8", "eager"),
    ("onnxruntime QDQ", "onnxruntime", "int8", "eager"),
)
CHOICE_BAR = 0.95  # issue 22: the calibrated choice within 5% of the fastest measured
INT8_OVER_FLOAT_BAR = 1.7  # issues 22 and 26: int8 at least 1.7x the best float precision, on every CPU kind


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


@torch.no_grad()
def benchmark_model(name: str, batch: torch.Tensor) -> torch.nn.Module:
    """`name` with random weights and BatchNorm statistics from `batch`, in eval mode."""
    from xception import create_model

    torch.manual_seed(0)
    model = create_model(name, num_classes=1000)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None
    model.train()(batch)
    return model.eval()


def per_round_ratio(numerator: list[float], denominator: list[float]) -> float:
    """The median over rounds of numerator's throughput over denominator's (seconds per call)."""
    return statistics.median(d / n for n, d in zip(numerator, denominator, strict=True))


def run(args: argparse.Namespace) -> dict:
    from xception.cpu import cpu_features_text, cpu_has_native_bf16, cpu_has_vnni, cpu_model
    from xception.deploy.build import build_engine
    from xception.deploy.choice import measured_runtime
    from xception.deploy.measure import measure_engines
    from xception.deploy.quantize import Int8RefusedError
    from xception.deploy.runtimes import software_versions, unavailable_reason
    from xception.deploy.timings import calibrate_runtimes

    torch.set_num_threads(args.threads)
    name, size, batch_size = ("xception_small", 32, 2) if args.smoke else ("xception", args.image_size, args.batch_size)
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(batch_size, 3, size, size, generator=generator) * 2 - 1
    calibration = torch.rand(16, 3, size, size, generator=generator) * 2 - 1
    load_before = load_average()
    model = benchmark_model(name, calibration)
    with torch.no_grad():
        reference = model(images)

    logging.info("calibration of the runtime choice (xception bench --choose)")
    timings, _ = calibrate_runtimes(model, image_size=size, batch_size=batch_size, threads=args.threads,
                                    budget_s=0 if args.smoke else args.choose_budget, progress=True)
    choices = {precision: measured_runtime(timings, precision=precision, decide="throughput")
               for precision in ("fp32", "bf16", "int8")}

    native = cpu_has_native_bf16()
    built, skipped = [], []
    with tempfile.TemporaryDirectory(prefix="xception-export-") as workdir:
        for label, runtime, precision, path in ENGINES:
            reason = unavailable_reason(runtime, precision)
            if reason is None and precision == "bf16" and not native:
                reason = "no native bf16 on this CPU"
            if reason is not None:
                skipped.append(dict(engine=label, precision=precision, reason=reason))
                continue
            logging.info("building %s %s", label, precision)
            try:
                engine = build_engine(model, runtime=runtime, precision=precision, device=torch.device("cpu"),
                                      image_size=size, workdir=workdir, threads=args.threads,
                                      calibration=calibration if precision == "int8" else None, torch_path=path)
            except Int8RefusedError as error:  # wrong on this CPU: said in the table, never timed
                skipped.append(dict(engine=label, precision=precision, reason=str(error)))
                continue
            built.append((label, engine))
        logging.info("timing %d engines in interleaved rounds", len(built))
        measured = measure_engines([engine for _, engine in built], images, budget_s=0 if args.smoke else args.budget,
                                   min_rounds=1 if args.smoke else args.min_rounds, max_rounds=50,
                                   label="interleaved rounds")
        rows = []
        for (label, engine), m in zip(built, measured, strict=True):
            output = engine(images)
            error = float((output.double() - reference.double()).abs().max() / reference.abs().max())
            rows.append(dict(engine=label, runtime=m.runtime, precision=m.precision, settings=m.engine,
                             images_per_s=m.images_per_s, ms_per_batch=1000 * m.median_s, seconds=list(m.seconds),
                             relative_error=error))
    load_after = load_average()
    return dict(
        command=" ".join(shlex.quote(a) for a in ["python", "benchmarks/deploy.py", *args.argv]),
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        machine=dict(cpu=cpu_model(), logical_cpus=os.cpu_count(), threads=args.threads, native_bf16=native,
                     vnni=cpu_has_vnni(), features=cpu_features_text(),
                     software=software_versions(), load_before=load_before, load_after=load_after),
        protocol=dict(model=name, image_size=size, batch_size=batch_size, rounds=len(rows[0]["seconds"]) if rows else 0),
        calibration=dict(measured_at=timings.measured_at,
                         choices={p: (c.runtime, c.precision) if c else None for p, c in choices.items()},
                         reasons={p: c.reason if c else None for p, c in choices.items()}),
        rows=rows,
        skipped=skipped,
    )


def _row_of(rows: list[dict], runtime: str, precision: str, label_start: str = "") -> dict | None:
    found = [r for r in rows if r["runtime"] == runtime and r["precision"] == precision
             and (not label_start or r["engine"].startswith(label_start))]
    return max(found, key=lambda r: r["images_per_s"]) if found else None


def checks(result: dict) -> list[str]:
    """Issue 22's bars as table lines, each a ratio of two different rows of the same rounds."""
    rows = result["rows"]
    lines = ["| check | bar | per-round ratio | ratio of medians | met |", "|---|---:|---:|---:|---|"]

    def line(text: str, numerator: dict, denominator: dict, bar: float | None) -> None:
        ratio = per_round_ratio(numerator["seconds"], denominator["seconds"])
        medians = numerator["images_per_s"] / denominator["images_per_s"]
        met = "-" if bar is None else ("yes" if min(ratio, medians) >= bar else "no")
        lines.append(f"| {text} | {'-' if bar is None else f'{bar:.2f}x'} | {ratio:.2f}x | {medians:.2f}x | {met} |")

    for precision in ("fp32", "bf16", "int8"):
        candidates = sorted((r for r in rows if r["precision"] == precision), key=lambda r: -r["images_per_s"])
        chosen = result["calibration"]["choices"].get(precision)
        if not candidates or chosen is None:
            continue
        # PyTorch in the calibration is its AOTInductor engine, the one users get.
        chosen_row = _row_of(rows, *chosen, "PyTorch AOT" if chosen[0] == "torch" and precision != "int8" else "")
        fastest_other = next((r for r in candidates if r is not chosen_row), None)
        if chosen_row is not None and fastest_other is not None:
            line(f"{precision}: the calibrated choice ({chosen_row['engine']}) / the fastest other row "
                 f"({fastest_other['engine']})", chosen_row, fastest_other, CHOICE_BAR)
        eager, aot = _row_of(rows, "torch", precision, "PyTorch eager"), _row_of(rows, "torch", precision, "PyTorch AOT")
        if eager and aot:
            line(f"{precision}: PyTorch AOTInductor / PyTorch eager", aot, eager, None)
    int8 = [r for r in rows if r["precision"] == "int8"]
    floats = [r for r in rows if r["precision"] in ("fp32", "bf16")]
    if int8 and floats:  # issue 26: on every kind of CPU, against its best float (bf16 where native, else fp32)
        best_int8 = max(int8, key=lambda r: r["images_per_s"])
        best_float = max(floats, key=lambda r: r["images_per_s"])
        line(f"int8 ({best_int8['engine']}) / the best float ({best_float['engine']} {best_float['precision']})",
             best_int8, best_float, INT8_OVER_FLOAT_BAR)
    return lines


def markdown(result: dict) -> str:
    m, p = result["machine"], result["protocol"]
    software = ", ".join(f"{k} {v}" for k, v in m["software"].items())
    table = ["| engine | precision | img/s | ms per batch | error vs eager fp32 |", "|---|---|---:|---:|---:|"]
    for r in sorted(result["rows"], key=lambda r: (r["precision"], -r["images_per_s"])):
        table.append(f"| {r['engine']} | {r['precision']} | {r['images_per_s']:.2f} | {r['ms_per_batch']:.0f} | "
                     f"{r['relative_error']:.2g} |")
    skipped = "".join(f"\n- not run: {s['engine']} {s['precision']} ({s['reason']})" for s in result["skipped"])
    choice = "\n".join(f"- {precision}: {reason}" for precision, reason in result["calibration"]["reasons"].items()
                       if reason)
    settings = "\n".join(f"- {r['engine']} {r['precision']}: {r['settings']}" for r in result["rows"])
    return f"""# Deployment engines on the CPU ({result['date']})

Produced by `{result['command']}`.

Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, {m['threads']} threads, native bf16:
{'yes' if m['native_bf16'] else 'no'}, VNNI: {'yes' if m['vnni'] else 'no'} ({m.get('features', 'features not recorded')}); {software}.
Load average (1, 5, 15 min) before: {', '.join(f'{x:.2f}' for x in m['load_before'])}; after:
{', '.join(f'{x:.2f}' for x in m['load_after'])}. On a shared machine the per-round ratios are the
figures to read; a rerun on a quiet machine makes the absolute ones final.

Protocol: `{p['model']}`, {p['image_size']} px, batch {p['batch_size']}, random weights with
BatchNorm statistics from a batch; {p['rounds']} interleaved rounds (every engine once per round),
medians. Error: the largest logit difference from eager PyTorch fp32 on the same batch over the
largest logit.

{chr(10).join(table)}
{skipped}

## The calibrated choice (`xception bench --choose`, throughput at batch {p['batch_size']})

{choice}

## Checks (issues 22 and 26)

{chr(10).join(checks(result))}

## Engines

{settings}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None,
                        help="writes OUT.md and OUT.json (default: benchmarks/results/deploy_<date>)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=299)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--budget", type=float, default=240, help="seconds of interleaved rounds (5 rounds at least)")
    parser.add_argument("--min-rounds", type=int, default=5)
    parser.add_argument("--choose-budget", type=float, default=60, help="the calibration's seconds of rounds")
    parser.add_argument("--smoke", action="store_true", help="xception_small at 32 px, batch 2, one round")
    args = parser.parse_args(argv)
    args.argv = argv if argv is not None else sys.argv[1:]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    result = run(args)
    out = args.out or Path("benchmarks/results") / f"deploy_{datetime.date.today().isoformat()}"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    print(out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
