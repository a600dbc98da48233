"""A comparison's report written again from its results.json, nothing retrained: for a new verdict
rule or report layout. The numbers, the command, the machine and the date stay those of the run;
the report says when, by which command and at which commit it was written again."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from xception.experiments.arms import ResolvedArm
from xception.experiments.comparison import ComparisonRun
from xception.experiments.definition import Comparison
from xception.experiments.matching import WidthMatch
from xception.experiments.records import RunRecord
from xception.experiments.registry import get_experiment
from xception.experiments.report import Provenance, now, write_comparison_report
from xception.experiments.scales import Scale
from xception.experiments.speed import TrainingSpeed
from xception.train.provenance import git_commit


def _arm(values: dict[str, Any]) -> ResolvedArm:
    # JSON turned tuples (fc_layers) into lists; the report prints them as the run had them.
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in values["overrides"].items()}
    match = WidthMatch(**values["match"]) if values["match"] else None
    return ResolvedArm(**{**values, "overrides": overrides, "match": match})


def load_comparison_run(results: dict[str, Any]) -> ComparisonRun:
    """The `ComparisonRun` that wrote `results` (a results.json's content)."""
    comparison = get_experiment(results["experiment"])
    if not isinstance(comparison, Comparison):
        raise ValueError(f"{results['experiment']} is not a comparison: its report has no verdicts to write again")
    known = {f.name for f in dataclasses.fields(Scale)}
    scale = Scale(**{k: v for k, v in results["scale"].items() if k in known})
    return ComparisonRun(
        comparison=comparison, scale=scale, arms=tuple(_arm(a) for a in results["arms"]),
        records=tuple(RunRecord(**r) for r in results["runs"]),
        speeds={k: TrainingSpeed(**v) for k, v in results["speeds"].items()}, macs=results["macs"],
        headline=results["headline"], seeds=tuple(results["seeds"]), wall_s=results["wall_s"],
    )


def _measured_date(results: dict[str, Any], report: Path) -> str:
    """When the numbers were measured: results.json's date, else (older files) report.md's."""
    if results.get("date"):
        return results["date"]
    found = re.search(r"^- date: (.+)$", report.read_text(), re.MULTILINE) if report.is_file() else None
    if found is None:
        raise ValueError(f"{report} gives no date and neither does its results.json")
    return found.group(1)


NOTES = "\n## Note added after the run"  # a section written by hand into a report, kept as it is


def rerender_comparison_report(out_dir: Path, *, command: str) -> Path:
    """Write `out_dir`'s report.md, plots and results.json again from its results.json, keeping a
    note added by hand at the end of the old report.md; return report.md's path."""
    path, report = out_dir / "results.json", out_dir / "report.md"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: give the directory of a written report")
    results = json.loads(path.read_text())
    old = report.read_text() if report.is_file() else ""
    provenance = Provenance(results["command"], results["machine"], _measured_date(results, report),
                            rendered=f"`{command}` at commit `{git_commit()}`, {now()}")
    write_comparison_report(load_comparison_run(results), out_dir, command=results["command"], provenance=provenance)
    if NOTES in old:
        report.write_text(report.read_text().rstrip("\n") + "\n" + old[old.index(NOTES):])
    return report
