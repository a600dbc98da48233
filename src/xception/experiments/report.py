"""An experiment's report directory: results.json (everything measured), the PNG plots, and
report.md (command, commit, machine, wall time, configuration, networks, table, verdicts, seeds)."""

from __future__ import annotations

import dataclasses
import datetime
import json
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xception.atomic_write import write_text_atomic
from xception.experiments.claims import judge
from xception.experiments.comparison import ComparisonRun
from xception.experiments.plots import (
    METRIC_NAMES,
    plot_final,
    plot_profiles,
    plot_speed_table,
    plot_tradeoff,
)
from xception.experiments.speed_table import SpeedTableRun
from xception.experiments.statistics import CONFIDENCE, POWER, summarize
from xception.train.provenance import environment

# The fields of a scale that Table 3 uses (the rest concern training).
TABLE3_FIELDS = ("name", "table3_batch_size", "precision", "speed_warmup_steps", "speed_steps")

VERDICT_RULE = (
    f"A difference is called real only when the {CONFIDENCE:.0%} confidence interval of the difference of the "
    "means over seeds excludes 0 (Welch's t, unequal variances; its two-sided p-value beside it). Where it does "
    "not, *detectable* is the smallest true difference this design would have found: the difference at which "
    f"the same test, with these seeds and the standard deviations observed, rejects with {POWER:.0%} probability "
    "(noncentral t).")

SCALE_NOTES = {
    "quick": "QUICK scale: a smoke-sized budget (small subsets, few epochs) to check the pipeline and see "
             "trends; not the committed full-scale result.",
    "full": "FULL scale: the configuration meant for the committed results.",
}


def machine() -> dict[str, Any]:
    """The environment of `xception.train.provenance` plus the CPU model."""
    info = environment(world_size=1)
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    info.setdefault("cpu_model", platform.processor() or "unknown")
    return info


def now() -> str:
    """The date and time a report gives: UTC, to the minute."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class Provenance:
    """Where a report's numbers come from: the command, the machine (`machine()`, with the git
    commit) and the date they were measured; `rendered`, when the report was written again later
    from its results.json, says by which command, at which commit and when."""

    command: str
    env: dict[str, Any]
    date: str
    rendered: str | None = None


def _header(title: str, scale: str, provenance: Provenance, wall_s: float) -> list[str]:
    env = provenance.env
    gpus = ", ".join(env["cuda_devices"]) or "none"
    rendered = [f"- report written again from results.json (no retraining): {provenance.rendered}"]
    return [
        f"# {title}",
        "",
        f"> **{SCALE_NOTES.get(scale, scale)}**",
        "",
        f"- command: `{provenance.command}`",
        f"- commit: `{env['git_commit']}`",
        f"- date: {provenance.date}",
        f"- machine: {env['cpu_model']}, {env['cpus']} CPUs ({env['torch_threads']} torch threads), GPUs: {gpus}; "
        f"{env['platform']}; Python {env['python']}, torch {env['torch']}",
        f"- wall time: {wall_s:.0f} s ({wall_s / 60:.1f} min)",
        *(rendered if provenance.rendered else []),
        "",
    ]


def _json_default(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    return str(value)


def write_comparison_report(run: ComparisonRun, out_dir: Path, *, command: str,
                            provenance: Provenance | None = None) -> Path:
    """Write results.json, profile_steps.png, profile_wall.png, final.png (and tradeoff.png when
    speeds were measured) and report.md into `out_dir`; return report.md's path. `provenance`
    (default: `command` on this machine, now) is where the numbers come from."""
    out_dir.mkdir(parents=True, exist_ok=True)
    provenance = provenance or Provenance(command, machine(), now())
    env, command = provenance.env, provenance.command
    comparison, headline = run.comparison, run.headline
    metric = METRIC_NAMES.get(headline, headline)
    plots = [*plot_profiles(run, out_dir), plot_final(run, out_dir)]
    if run.speeds:
        plots.append(plot_tradeoff(run, out_dir))
    outcomes = [judge(run, claim) for claim in comparison.claims]

    def scores(label: str, split: str, key: str = headline) -> Any:
        """Summary over seeds, or None where the split was not scored (training images at ImageNet scale)."""
        values = [getattr(r, split)[key] for r in run.records if r.arm == label and key in getattr(r, split)]
        return summarize(values) if values else None

    def cell(summary: Any) -> str:
        return summary.format(100) if summary is not None else "not scored"

    lines = _header(f"{comparison.name}: {comparison.paper_ref}, {run.scale.name} scale", run.scale.name,
                    provenance, run.wall_s)
    lines += [
        comparison.question,
        "",
        f"Seeds: {', '.join(map(str, run.seeds))}. Every arm: the same data, recipe, budget and seeds. {VERDICT_RULE}",
        "",
        "## Networks",
        "",
        f"| arm | model | overrides | trainable parameters | matched to | MACs at {run.records[0].train_config['data']['image_size'] if run.records else '?'} px (M) |",
        "|---|---|---|---|---|---|",
    ]
    for arm in run.arms:
        overrides = ", ".join(f"{k}={v}" for k, v in arm.overrides.items() if k not in
                              ("entry_flow", "middle_flow", "exit_flow", "stem_channels"))
        shape = " (VGG-style flows, see the experiment file)" if "entry_flow" in arm.overrides else ""
        matched = (f"{arm.matched_to}: {arm.match.target:,} ({(arm.parameters - arm.match.target) / arm.match.target:+.1%})"
                   if arm.match else "-")
        lines.append(f"| {arm.label} | {arm.model} | {overrides}{shape} | {arm.parameters:,} | {matched} "
                     f"| {run.macs[arm.label] / 1e6:.1f} |")
    lines += ["", f"## Results: final {metric} (%), mean ± std over seeds", ""]
    speed_head = " training steps/s |" if run.speeds else ""
    lines += [f"| arm | test {metric} | train {metric} | final training loss | steps | wall s per run |{speed_head}",
              "|---|---|---|---|---|---|" + ("---|" if run.speeds else "")]
    for arm in run.arms:
        mine = [r for r in run.records if r.arm == arm.label]
        loss = summarize([r.history[-1]["train_loss"] for r in mine])
        wall = summarize([r.wall_s for r in mine])
        speed = f" {run.speeds[arm.label].steps_per_s:.2f} |" if run.speeds else ""
        lines.append(f"| {arm.label} | {cell(scores(arm.label, 'test'))} | {cell(scores(arm.label, 'train'))} "
                     f"| {loss.format(1, 3)} | {mine[0].steps} | {wall.format(1, 0)} |{speed}")
    lines += ["", "## Against the paper", "",
              f"| paper | ours (mean ± std) | difference, 95% interval ({metric}, pp) | Welch p | detectable (pp) | verdict |",
              "|---|---|---|---|---|---|"]
    for outcome in outcomes:
        ours = (f"{outcome.claim.better} {outcome.better.format(100)} vs {outcome.claim.worse} "
                f"{outcome.worse.format(100)}")
        d = outcome.difference
        stats = (f"{d.format(100)} | {d.p_value:.3f} | {d.detectable * 100:.2f}" if d is not None
                 else "one seed | - | -")
        lines.append(f"| {outcome.claim.paper} | {ours} | {stats} | **{outcome.agreement}**: {outcome.sentence()} |")
    if any(o.agreement != "agrees" for o in outcomes):
        lines += ["", "Where this disagrees with the paper or cannot separate the arms, likely reasons (written "
                  "before the results): " + comparison.caveats]
    lines += ["", "## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots]
    lines += ["", "## Per seed (final test / train)", "", "| arm | seed | test | train | wall s |", "|---|---|---|---|---|"]
    for r in run.records:
        train = f"{r.train[headline] * 100:.2f}" if headline in r.train else "not scored"
        lines.append(f"| {r.arm} | {r.seed} | {r.test[headline] * 100:.2f} | {train} | {r.wall_s:.0f} |")
    runtime = run.records[0].runtime if run.records else {}
    lines += ["", "## Configuration", "", "```json", json.dumps({
        "scale": dataclasses.asdict(run.scale), "runtime": runtime,
        "train_config_of_first_run": run.records[0].train_config if run.records else None,
    }, indent=2, default=_json_default), "```", ""]
    write_text_atomic(out_dir / "report.md", "\n".join(lines))
    results = {
        "experiment": comparison.name, "paper_ref": comparison.paper_ref, "scale": dataclasses.asdict(run.scale),
        "command": command, "machine": env, "date": provenance.date, "rendered": provenance.rendered,
        "wall_s": run.wall_s, "seeds": list(run.seeds), "headline": headline,
        "arms": [dataclasses.asdict(a) for a in run.arms],
        "summary": {a.label: {"test": scores(a.label, "test"), "train": scores(a.label, "train"),
                              "parameters": a.parameters} for a in run.arms},
        "claims": [{"paper": o.claim.paper, "better": o.claim.better, "worse": o.claim.worse, "expect": o.claim.expect,
                    "difference": o.difference, "verdict": o.verdict, "agreement": o.agreement} for o in outcomes],
        "speeds": {k: dataclasses.asdict(v) for k, v in run.speeds.items()},
        "macs": run.macs,
        "runs": [dataclasses.asdict(r) for r in run.records],
    }
    write_text_atomic(out_dir / "results.json", json.dumps(results, indent=2, default=_json_default))
    return out_dir / "report.md"


def write_speed_table_report(run: SpeedTableRun, out_dir: Path, *, command: str) -> Path:
    """Write results.json, speed.png and report.md for Table 3 into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    provenance = Provenance(command, machine(), now())
    env, table = provenance.env, run.table
    plot = plot_speed_table(run, out_dir)
    lines = _header(f"{table.name}: {table.paper_ref}, {run.scale.name} scale", run.scale.name, provenance, run.wall_s)
    lines += [
        table.question,
        "",
        f"Input {table.image_size} px, {table.num_classes} classes, batch {run.scale.table3_batch_size}, precision "
        f"{run.scale.precision}; the training step of `xception.train` (forward, backward, SGD with momentum, "
        f"Polyak averaging: the paper_imagenet recipe), {run.scale.speed_warmup_steps} warm-up steps then the "
        f"median of {run.scale.speed_steps} timed steps; {run.repeats} measurements per network, interleaved; "
        "mean ± std over measurements.",
        "",
        "| network | device | trainable parameters | paper's parameters | MACs (G) | training steps/s | paper's steps/s (60 K80) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in run.rows:
        paper_params, paper_speed = table.paper[row.model]
        lines.append(f"| {row.model} | {row.device} | {row.parameters:,} | {paper_params:,} | {row.macs / 1e9:.2f} "
                     f"| {row.steps_per_s.format(1, 3)} | {paper_speed:g} |")
    lines += ["", "| device | Xception / Inception V3 speed | paper's ratio |", "|---|---|---|"]
    paper_ratio = table.paper["xception"][1] / table.paper["inception_v3"][1]
    for device in sorted({row.device for row in run.rows}):
        by_model = {row.model: row for row in run.rows if row.device == device}
        ratio = by_model["xception"].steps_per_s.mean / by_model["inception_v3"].steps_per_s.mean
        lines.append(f"| {device} | {ratio:.2f} | {paper_ratio:.2f} |")
    lines += ["", "Notes: " + table.caveats, "", "## Plot", "", f"![speed]({plot.name})", "",
              "## Configuration", "", "```json", json.dumps({k: getattr(run.scale, k) for k in TABLE3_FIELDS}, indent=2),
              "```", ""]
    write_text_atomic(out_dir / "report.md", "\n".join(lines))
    results = {"experiment": table.name, "paper_ref": table.paper_ref, "scale": dataclasses.asdict(run.scale),
               "command": command, "machine": env, "date": provenance.date, "wall_s": run.wall_s, "repeats": run.repeats,
               "rows": [dataclasses.asdict(r) for r in run.rows], "paper": table.paper}
    write_text_atomic(out_dir / "results.json", json.dumps(results, indent=2, default=_json_default))
    return out_dir / "report.md"
