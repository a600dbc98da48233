"""Which runtime is fastest on this machine, measured: a short calibration of every installed
runtime and precision on the model, input size and batch at hand, cached on disk.

`calibrate_runtimes` (run by `xception bench --choose`) builds the engines `predict` and `eval`
would run (PyTorch through its cached AOTInductor package, onnxruntime and OpenVINO from the ONNX
export), in fp32, in bf16 where the CPU computes it natively, and in int8 (each runtime's own
quantization, calibrated for speed on random images: the graph, and so its speed, is the same as
with real ones), and times them in interleaved rounds for `DEFAULT_BUDGET_S` seconds
(`xception.deploy.measure`). int8 is never a default (it changes answers): it is chosen by these
figures only where `--precision int8` asks for it.

The result is cached as JSON in `$XCEPTION_HOME/runtime-timings/`, one file per model
architecture, input size and batch size, holding the key it was measured under: the CPU model
and flags, the thread count and the versions of the software (`timing_key`). `load_timings` reads
it back; a file measured under another key (stale) or unreadable (corrupt) is ignored with a
warning that says how to measure again, never an error.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from xception.atomic_write import write_bytes_atomic
from xception.cpu import cpu_flags, cpu_has_native_bf16, cpu_model
from xception.deploy.build import build_engine
from xception.deploy.digest import architecture_digest
from xception.deploy.measure import Measurement, measure_engines
from xception.deploy.quantize import Int8RefusedError
from xception.deploy.runtimes import PRECISIONS, RUNTIMES, software_versions, unavailable_reason
from xception.home import xception_home

log = logging.getLogger(__name__)

# Timed rounds run for about a minute after the engines are built: at 299 px and batch 16 one
# round of five engines takes ~5 s on 2 cores, so a minute gives the 10+ rounds whose median
# moves by a few percent at most between runs on a shared machine; 3 rounds at least, whatever
# the budget, where one call is slow (a large batch).
DEFAULT_BUDGET_S = 60.0
CALIBRATED_PRECISIONS = ("fp32", "bf16", "int8")
INT8_CALIBRATION_IMAGES = 16  # random: enough to give every activation a range; speed does not depend on it
MEASURE_HINT = "xception bench --choose --weights WEIGHTS"


@dataclass(frozen=True)
class Timings:
    """The measurements of one calibration and the key and time they were measured under."""

    key: dict[str, Any]
    measured_at: str  # ISO 8601, UTC
    measurements: tuple[Measurement, ...]

    def to_json(self) -> str:
        return json.dumps(dict(key=self.key, measured_at=self.measured_at,
                               measurements=[m.to_json() for m in self.measurements]), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Timings:
        data = json.loads(text)
        measurements = tuple(Measurement(m["runtime"], m["precision"], m["engine"], int(m["batch_size"]),
                                         tuple(float(s) for s in m["seconds"])) for m in data["measurements"])
        if not measurements or any(not m.seconds or min(m.seconds) <= 0 for m in measurements):
            raise ValueError("no positive timings")
        return cls(dict(data["key"]), str(data["measured_at"]), measurements)


def timing_key(model: nn.Module, *, image_size: int, batch_size: int, threads: int) -> dict[str, Any]:
    """What a calibration depends on: the machine, the software, and the model, size and batch."""
    return dict(
        cpu=cpu_model(),
        cpu_flags=hashlib.sha256(" ".join(sorted(cpu_flags())).encode()).hexdigest()[:16],
        threads=threads,
        software=software_versions(),
        model=getattr(model, "model_name", type(model).__name__),
        architecture=architecture_digest(model)[:16],
        image_size=image_size,
        batch_size=batch_size,
    )


def timings_path(key: dict[str, Any]) -> Path:
    """The cache file of a calibration: one per model architecture, input size and batch size."""
    name = f"{key['model']}-{key['architecture'][:12]}-{key['image_size']}px-batch{key['batch_size']}.json"
    return xception_home() / "runtime-timings" / name


def load_timings(model: nn.Module, *, image_size: int, batch_size: int, threads: int | None = None,
                 nearest: bool = False) -> Timings | None:
    """The cached calibration for `model` at this size and batch on this machine and software, or
    None: none was measured, or the file is corrupt or stale (both said in a warning). `nearest`:
    where this batch size was not measured, the measured one nearest to it (by ratio), whose batch
    size the figures carry, so a reason built from them names the batch that was timed."""
    key = timing_key(model, image_size=image_size, batch_size=batch_size, threads=threads or torch.get_num_threads())
    path = timings_path(key)
    if not path.exists() and nearest:
        measured = [size for size in _measured_batch_sizes(path) if size > 1]  # batch 1 is latency, not throughput
        if measured:
            batch_size = min(measured, key=lambda size: abs(math.log(size / batch_size)))
            key = {**key, "batch_size": batch_size}
            path = timings_path(key)
    if not path.exists():
        return None
    try:
        timings = Timings.from_json(path.read_text())
    except (OSError, ValueError, KeyError, TypeError) as error:  # JSONDecodeError is a ValueError
        log.warning("ignoring the runtime timings in %s: unreadable (%s); measure again: %s", path, error, MEASURE_HINT)
        return None
    changed = [name for name in key if timings.key.get(name) != key[name]]
    if changed:
        log.warning("ignoring the runtime timings in %s: measured with another %s; measure again: %s", path,
                    ", ".join(_describe_change(name, timings.key.get(name), key[name]) for name in changed),
                    MEASURE_HINT)
        return None
    return timings


def _measured_batch_sizes(path: Path) -> list[int]:
    """The batch sizes calibrated for the model and size of the cache file `path` (any batch)."""
    stem = path.name.rsplit("-batch", 1)[0]
    found = []
    for other in path.parent.glob(f"{stem}-batch*.json"):
        size = other.name[len(stem) + len("-batch"):-len(".json")]
        if size.isdigit() and int(size) > 0:
            found.append(int(size))
    return sorted(found)


def _describe_change(name: str, before: Any, now: Any) -> str:
    if isinstance(before, dict) and isinstance(now, dict):
        parts = [f"{k} {before.get(k)} -> {now.get(k)}" for k in sorted(set(before) | set(now)) if before.get(k) != now.get(k)]
        return f"{name} ({', '.join(parts)})"
    return f"{name} ({before} -> {now})"


def calibration_candidates() -> list[tuple[str, str]]:
    """(runtime, precision) of every installed runtime in fp32 and int8, and in bf16 where the CPU has it."""
    native = cpu_has_native_bf16()
    return [(runtime, precision) for runtime in RUNTIMES for precision in CALIBRATED_PRECISIONS
            if precision in PRECISIONS[runtime] and (precision != "bf16" or native)
            and unavailable_reason(runtime, precision) is None]


def calibrate_runtimes(model: nn.Module, *, image_size: int, batch_size: int, threads: int | None = None,
                       budget_s: float = DEFAULT_BUDGET_S, progress: bool = True) -> tuple[Timings, Path]:
    """Measure every `calibration_candidates` engine of `model` (eval mode, fp32) on a random
    (batch_size, C, image_size, image_size) batch, write the result to the cache, and return it
    with its path. An engine that cannot be built here is left out with a warning."""
    threads = threads or torch.get_num_threads()
    key = timing_key(model, image_size=image_size, batch_size=batch_size, threads=threads)
    generator = torch.Generator().manual_seed(0)
    channels = getattr(model, "in_channels", 3)
    images = torch.rand(batch_size, channels, image_size, image_size, generator=generator) * 2 - 1
    calibration = torch.rand(INT8_CALIBRATION_IMAGES, channels, image_size, image_size, generator=generator) * 2 - 1
    engines = []
    with tempfile.TemporaryDirectory(prefix="xception-export-") as workdir:
        for runtime, precision in calibration_candidates():
            try:
                engines.append(build_engine(model, runtime=runtime, precision=precision, device=torch.device("cpu"),  # type: ignore[arg-type]
                                            image_size=image_size, workdir=workdir, threads=threads, torch_path="aot",
                                            calibration=calibration if precision == "int8" else None))
            except (RuntimeError, Int8RefusedError) as error:  # refused int8 is never timed, so never chosen
                log.warning("left out of the calibration: %s %s (%s)", runtime, precision, str(error).strip()[:200])
        measured_at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        measurements = measure_engines(engines, images, budget_s=budget_s, progress=progress,
                                       label=f"timing {len(engines)} engines at batch {batch_size}")
    timings = Timings(key, measured_at, tuple(measurements))
    path = write_bytes_atomic(timings_path(key), timings.to_json().encode())
    return timings, path
