"""What may change when a run continues (where it continues from: `xception.train.run_directory`).

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
from pathlib import Path
from typing import Any

REFUSED = ("model", "init_weights", "model_overrides", "batch_size", "seed", "data")
# The recipe fields whose change makes the saved optimizer or average state meaningless.
REFUSED_RECIPE = ("optimizer", "loss")
# Fields that say where a run writes and how it shows progress, not what it computes.
UNCHECKED = ("out_dir", "resume", "restart", "progress", "trackers", "stop_after_steps", "num_workers",
             "cpu_threads", "device", "log_every_steps", "checkpoint_every_steps")
# A data set may move (another mount point) or be downloaded again: the same data.
UNCHECKED_DATA = ("path", "download")


def config_changes(saved: dict[str, Any], now: dict[str, Any], *, saved_recipe: dict[str, Any],
                   recipe: dict[str, Any], source: Path) -> dict[str, list[Any]]:
    """The accepted changes from a checkpoint's config to this run's, {field: [before, now]}.

    Raises ValueError naming the fields when a refused one changed.
    """
    # As JSON sees them: a config read from a checkpoint's summary has lists where the checkpoint has tuples.
    saved, now = json.loads(json.dumps(saved, default=str)), json.loads(json.dumps(now, default=str))
    saved_recipe, recipe = json.loads(json.dumps(saved_recipe)), json.loads(json.dumps(recipe))

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
