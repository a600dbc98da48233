"""Renderings of a `BenchResult`: a markdown table for people, JSON for machines, and ratios."""

from __future__ import annotations

import json
import statistics
from typing import Any

from xception.bench.suite import INFERENCE_ONLY, BenchResult, BenchRow


def to_json(result: BenchResult) -> str:
    return json.dumps(result.to_dict(), indent=2, default=str)


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _settings(row: BenchRow) -> str:
    if row.settings:  # a deployment runtime or int8: its own description
        return row.settings
    parts = ["channels_last" if row.channels_last else "contiguous"]
    if row.fused:
        parts.append("BN folded")
    if row.compiled:
        parts.append(f"compiled ({row.compile_s:.0f} s)" if row.compile_s is not None else "compiled")
    return ", ".join(parts)


def markdown_table(result: BenchResult) -> str:
    """One row per contender, mode and precision: throughput, step time, memory, GFLOP/s, % of peak,
    and for inference the relative error of the logits against the same model's eager fp32 ones;
    then one row per contender that was not run, saying why."""
    lines = [
        "| mode | precision | model | settings | images/s (median) | images/s (best round) | ms/step "
        "| peak memory (MB) | GFLOP/image | GFLOP/s | % of peak | error vs eager fp32 |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result.rows:
        error = "-" if r.relative_error is None else f"{r.relative_error:.1e}"
        lines.append(
            f"| {r.mode} | {r.precision} | `{r.model}` | {_settings(r)} | {r.images_per_s:.2f} | {r.best_images_per_s:.2f} | "
            f"{r.ms_per_step:,.0f} | {_fmt(r.peak_memory_mb, 0)} | {r.gflop_per_image:.1f} | "
            f"{r.achieved_gflops:,.0f} | {_fmt(r.percent_of_peak)} | {error} |"
        )
    for s in result.skipped:
        if s["reason"] == INFERENCE_ONLY:  # runtimes and int8 in the training section: obvious
            continue
        lines.append(f"| {s['mode']} | {s['precision']} | `{s['model']}` | not run: {s['reason']} |" + " - |" * 8)
    return "\n".join(lines)


def peaks_table(result: BenchResult) -> str:
    """The measured convolution peak per precision (median over the rounds)."""
    if not result.peaks:
        return ""
    cases = sorted({case for values in result.peaks.values() for case in values if case != "peak"})
    lines = ["| precision | " + " | ".join(f"{c} GFLOP/s" for c in cases) + " | peak GFLOP/s |"]
    lines.append("|---|" + "---:|" * (len(cases) + 1))
    for precision, values in result.peaks.items():
        lines.append(
            f"| {precision} | " + " | ".join(f"{values[c]:,.0f}" for c in cases) + f" | {values['peak']:,.0f} |"
        )
    return "\n".join(lines)


def ratios(result: BenchResult, numerator: str) -> list[dict[str, Any]]:
    """Throughput of `numerator` over every other contender, per mode and precision: the ratio of
    the medians over rounds, and the median of the per-round ratios (robust to load that changes
    from round to round, since the contenders of one round share it)."""
    by_key = {(r.mode, r.precision, r.model): r for r in result.rows}
    out = []
    for (mode, precision, model), row in by_key.items():
        ours = by_key.get((mode, precision, numerator))
        if ours is None or model == numerator:
            continue
        out.append(
            dict(
                mode=mode,
                precision=precision,
                numerator=numerator,
                denominator=model,
                ratio=ours.images_per_s / row.images_per_s,
                per_round_ratio=statistics.median(
                    theirs / mine for mine, theirs in zip(ours.round_seconds, row.round_seconds, strict=True)
                ),
            )
        )
    return out


def ratios_table(result: BenchResult, numerator: str) -> str:
    rows = ratios(result, numerator)
    if not rows:
        return ""
    lines = ["| mode | precision | ratio | of medians | median of per-round ratios |", "|---|---|---|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['mode']} | {r['precision']} | `{numerator}` / `{r['denominator']}` | {r['ratio']:.2f} "
            f"| {r['per_round_ratio']:.2f} |"
        )
    return "\n".join(lines)


def machine_line(result: BenchResult) -> str:
    m = result.machine
    load = m.get("load_average")
    load_end = m.get("load_average_end")
    text = (
        f"{m['date']}: {m['cpu']} ({m['cpu_count']} logical CPUs, {m['threads']} threads, native bf16: "
        f"{'yes' if m['native_bf16'] else 'no'}), torch {m['torch']}, torchvision {m['torchvision']}, "
        f"timm {m['timm']}"
    )
    runtimes = [f"{name} {m[name]}" for name in ("onnxruntime", "openvino", "nncf", "torchao") if m.get(name)]
    if runtimes:
        text += ", " + ", ".join(runtimes)
    if m.get("gpu"):
        text += f", GPU {m['gpu']} (CUDA {m['cuda']}, cuDNN {m['cudnn']})"
    if load:
        text += f"; load average {load[0]:.2f} at start"
    if load_end:
        text += f", {load_end[0]:.2f} at end"
    return text
