"""Where a run continues from, and what may change when it does.

`xception train --out DIR` continues from DIR/checkpoints/latest.pt whenever it exists (as after a
kill, a preemption or a `torchrun --max-restarts` relaunch, which repeats the same command);
`restart` starts over instead, `resume` names another run to start from when DIR has no checkpoint
yet (DIR receives everything; the other run is only read).

A resume refuses changes that make the checkpoint meaningless (`REFUSED`: the model, the data, the
batch size, the seed, and an optimizer or averaging of another kind, whose state would not fit) and
accepts the rest (a lower learning rate after a divergence, another schedule, more steps) with a
warning that the run records in metrics.jsonl (kind "resume": the step and each change).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from xception.atomic_write import write_text_atomic
from xception.train.checkpoint import LATEST
from xception.train.logbook import METRICS

REFUSED = ("model", "init_weights", "model_overrides", "batch_size", "seed", "data")
# The recipe fields whose change makes the saved optimizer or average state meaningless.
REFUSED_RECIPE = ("optimizer", "loss")
# Fields that say where a run writes and how it shows progress, not what it computes.
UNCHECKED = ("out_dir", "resume", "restart", "progress", "tensorboard", "stop_after_steps", "num_workers",
             "cpu_threads", "device", "log_every_steps", "checkpoint_every_steps")
# A data set may move (another mount point) or be downloaded again: the same data.
UNCHECKED_DATA = ("path", "download")


def latest_checkpoint(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / "checkpoints" / LATEST


def resume_source(*, out_dir: str, resume: str | None, restart: bool) -> Path | None:
    """The checkpoint a run in `out_dir` continues from: out_dir's own latest one when it exists
    (unless `restart`), else `resume` (a file, or a run directory), else None (a fresh start)."""
    own = latest_checkpoint(out_dir)
    if restart:
        return None
    if own.is_file():
        return own
    if resume is None:
        return None
    resume_path = Path(resume)
    return latest_checkpoint(resume_path) if resume_path.is_dir() else resume_path


def run_dir_of(checkpoint: str | os.PathLike) -> Path:
    """The run directory a checkpoint (or a run directory) belongs to."""
    path = Path(checkpoint)
    if path.is_dir():
        return path
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent


def config_changes(saved: dict[str, Any], now: dict[str, Any], *, saved_recipe: dict[str, Any],
                   recipe: dict[str, Any], source: Path) -> dict[str, list[Any]]:
    """The accepted changes from a checkpoint's config to this run's, {field: [before, now]}.

    Raises ValueError naming the fields when a refused one changed.
    """
    def data_view(config: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in (config.get("data") or {}).items() if k not in UNCHECKED_DATA}

    refused = [k for k in REFUSED if k != "data" and saved.get(k) != now.get(k)]
    if data_view(saved) != data_view(now):
        refused.append("data")
    refused += [f"recipe.{k}" for k in REFUSED_RECIPE if saved_recipe.get(k) != recipe.get(k)]
    if (saved_recipe.get("average_decay") is None) != (recipe.get("average_decay") is None):
        refused.append("recipe.average_decay (averaging on/off)")
    if refused:
        shown = "; ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in refused if k in saved)
        raise ValueError(f"cannot resume from {source}: {', '.join(refused)} differ from the checkpoint's ({shown}); "
                         "use the checkpoint's settings, or start over with --restart (or another --out)")
    checked = set(now) - set(UNCHECKED) - set(REFUSED)
    return {k: [saved.get(k), now.get(k)] for k in sorted(checked) if saved.get(k) != now.get(k)}


# What a run writes into its directory besides config.json and environment.json.
RUN_OUTPUTS = ("checkpoints", "tensorboard", METRICS, "final.json", "weights.safetensors", "best.safetensors",
               "curves.png")


def check_fresh_start(run_dir: Path) -> None:
    """Refuse to start a new run over an earlier run's outputs that have no checkpoint to continue
    from (its weights would be deleted): that takes --restart."""
    # Metrics and logs of an attempt killed before its first checkpoint hold nothing to keep.
    found = [name for name in ("final.json", "weights.safetensors", "best.safetensors") if (run_dir / name).exists()]
    if found:
        raise ValueError(f"{run_dir} holds an earlier run's {', '.join(found)} but no checkpoint to continue from; "
                         "start over there with --restart (it deletes them), or give another --out")


def clear_run_outputs(run_dir: Path) -> None:
    """Delete an earlier run's outputs from `run_dir` (starting over is an explicit choice: --restart)."""
    import shutil

    for name in RUN_OUTPUTS:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def keep_metrics_up_to(run_dir: Path, step: int, *, source_dir: Path | None = None) -> None:
    """Make `run_dir`/metrics.jsonl hold the rows of steps <= `step` only, once each: a resumed
    run replays the steps after its checkpoint, and would otherwise log them twice. Rows come from
    `source_dir`'s file when the run continues another run's checkpoint in a new directory."""
    source = (source_dir or run_dir) / METRICS
    if not source.is_file():
        return
    kept = [row for row in map(_parse, source.read_text().splitlines()) if row is not None and row.get("step", 0) <= step]
    write_text_atomic(run_dir / METRICS, "".join(json.dumps(row) + "\n" for row in kept))


def _parse(line: str) -> dict[str, Any] | None:
    """A metrics row, or None for a blank line or the torn last line of a process killed mid-append."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None
    return row if isinstance(row, dict) else None
