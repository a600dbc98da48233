"""The side-by-side benchmark: every contender in the same run, interleaved, median of repeats.

For each mode (training, inference) and precision, all contenders are built and warmed up, then
`repeats` rounds run; in each round the machine's convolution peak is measured and every
contender runs `iterations` steps, one after the other. Background load therefore hits all
contenders (and the peak) alike, and the ratios between them stay meaningful on a shared machine.
"""

from __future__ import annotations

import logging
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

import torch

from xception.bench.contenders import (
    build_model,
    check_installed,
    forward_gflop,
    parse_contender,
    prepare_for_inference,
)
from xception.bench.memory import step_peak_memory
from xception.bench.peak import measure_peak
from xception.bench.steps import make_step
from xception.runtime import Precision, cpu_has_native_bf16, retain_freed_memory, synchronize

log = logging.getLogger(__name__)

Mode = Literal["train", "infer"]
Layout = Literal["best", "channels_last", "contiguous"]


@dataclass(frozen=True)
class BenchConfig:
    """What to measure. `layout="best"` times one step in each memory layout and keeps the faster."""

    models: tuple[str, ...]
    batch_size: int
    image_size: int
    precisions: tuple[Precision, ...]
    modes: tuple[Mode, ...]
    layout: Layout
    compile: bool
    fuse: bool  # fold BatchNorm into convolutions for this project's models at inference
    compile_ours_inference: bool  # this project's models' best inference settings include compilation
    threads: int | None
    iterations: int
    repeats: int
    warmup: int
    device: str
    num_classes: int = 1000
    measure_peak: bool = True
    measure_memory: bool = True


@dataclass(frozen=True)
class BenchRow:
    """One contender in one mode and precision. Times are medians over the repeats."""

    model: str
    mode: Mode
    precision: Precision
    channels_last: bool
    compiled: bool
    fused: bool
    batch_size: int
    image_size: int
    images_per_s: float
    ms_per_step: float
    best_images_per_s: float  # the fastest round: background load only ever adds time
    round_seconds: tuple[float, ...]  # mean step time of each round
    gflop_per_image: float  # forward FLOPs, x3 for a training step (forward + two backward GEMMs)
    achieved_gflops: float
    peak_gflops: float | None
    percent_of_peak: float | None
    peak_memory_mb: float | None
    compile_s: float | None
    layout_probe_s: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class BenchResult:
    config: BenchConfig
    rows: tuple[BenchRow, ...]
    peaks: dict[str, dict[str, float]]  # precision -> {case: median GFLOP/s, "peak": best}
    machine: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchResult:
        """The inverse of `to_dict` (after a JSON round trip: lists become tuples again)."""
        config = BenchConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in data["config"].items()})
        rows = []
        for row in data["rows"]:
            row = dict(row, round_seconds=tuple(row["round_seconds"]))
            # Files written before `best_images_per_s` existed: derive it from the rounds.
            row.setdefault("best_images_per_s", row["batch_size"] / min(row["round_seconds"]))
            rows.append(BenchRow(**row))
        return cls(config=config, rows=tuple(rows), peaks=data["peaks"], machine=data["machine"])


def describe_machine(device: torch.device) -> dict[str, Any]:
    """What the numbers were measured on: CPU, cores, threads, libraries, load, date."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = dict(
        date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        cpu=cpu,
        cpu_count=os.cpu_count(),
        threads=torch.get_num_threads(),
        native_bf16=cpu_has_native_bf16(),
        torch=torch.__version__,
        python=platform.python_version(),
        device=str(device),
        load_average=os.getloadavg() if hasattr(os, "getloadavg") else None,
    )
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
    for module in ("torchvision", "timm"):
        try:
            info[module] = __import__(module).__version__
        except ImportError:
            info[module] = None
    return info


def _time_steps(step, device: torch.device, count: int) -> float:
    """Mean seconds per step over `count` steps."""
    synchronize(device)
    start = time.perf_counter()
    for _ in range(count):
        step()
    synchronize(device)
    return (time.perf_counter() - start) / count


class _Prepared:
    """One contender ready to run in one mode and precision: its step, layout and metadata."""

    def __init__(self, spec: str, mode: Mode, precision: Precision, config: BenchConfig, device: torch.device):
        contender = parse_contender(spec)
        self.spec = spec
        model = build_model(contender, num_classes=config.num_classes)
        self.forward_gflop = forward_gflop(model, config.image_size)
        training = mode == "train"
        if not training:
            model = prepare_for_inference(model, contender, fuse=config.fuse)
        self.fused = (not training) and contender.is_ours and config.fuse
        self.compiled = config.compile or ((not training) and contender.is_ours and config.compile_ours_inference)
        model.to(device)
        options = dict(
            training=training,
            batch_size=config.batch_size,
            image_size=config.image_size,
            num_classes=config.num_classes,
            precision=precision,
            device=device,
        )
        self.layout_probe: dict[str, float] = {}
        channels_last = config.layout != "contiguous"
        if config.layout == "best":
            for name, flag in (("contiguous", False), ("channels_last", True)):
                probe = make_step(model, channels_last=flag, compile=False, **options)
                probe()  # first call: primitive creation, allocator growth
                self.layout_probe[name] = _time_steps(probe, device, 1)
            channels_last = self.layout_probe["channels_last"] <= self.layout_probe["contiguous"]
        self.channels_last = channels_last
        self.step = make_step(model, channels_last=channels_last, compile=self.compiled, **options)
        self.compile_s: float | None = None
        if self.compiled:
            synchronize(device)
            start = time.perf_counter()
            self.step()
            synchronize(device)
            self.compile_s = time.perf_counter() - start
        for _ in range(config.warmup):
            self.step()
        # Inductor's CPU code allocates its buffers outside the profiler's view: not measured.
        measurable = config.measure_memory and not (self.compiled and device.type == "cpu")
        self.peak_memory = step_peak_memory(self.step, device) if measurable else None


def run_benchmark(config: BenchConfig) -> BenchResult:
    """Measure every contender of `config` side by side; see the module docstring for the protocol."""
    for spec in config.models:  # before any work: a missing library fails at once, saying what to install
        check_installed(parse_contender(spec))
    if config.threads:
        torch.set_num_threads(config.threads)
    device = torch.device(config.device)
    # Process-wide, so every contender runs with it, as `xception train` does on a CPU.
    retained = device.type == "cpu" and retain_freed_memory()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    machine = describe_machine(device)
    machine["freed_memory_retained"] = retained
    peak_samples: dict[str, dict[str, list[float]]] = {}
    rows: list[BenchRow] = []
    for mode in config.modes:
        for precision in config.precisions:
            prepared = []
            for spec in config.models:
                log.info("preparing %s (%s, %s)", spec, mode, precision)
                prepared.append(_Prepared(spec, mode, precision, config, device))
            rounds: dict[str, list[float]] = {p.spec: [] for p in prepared}
            for r in range(config.repeats):
                if config.measure_peak:
                    for case, value in measure_peak(device, precision=precision).items():
                        peak_samples.setdefault(precision, {}).setdefault(case, []).append(value)
                for p in prepared:
                    rounds[p.spec].append(_time_steps(p.step, device, config.iterations))
                log.info(
                    "%s %s round %d/%d: %s",
                    mode,
                    precision,
                    r + 1,
                    config.repeats,
                    ", ".join(f"{s} {config.batch_size / t[-1]:.2f} img/s" for s, t in rounds.items()),
                )
            peak = statistics.median(peak_samples[precision]["peak"]) if config.measure_peak else None
            for p in prepared:
                seconds = statistics.median(rounds[p.spec])
                gflop = p.forward_gflop * (3 if mode == "train" else 1)
                achieved = gflop * config.batch_size / seconds
                rows.append(
                    BenchRow(
                        model=p.spec,
                        mode=mode,
                        precision=precision,
                        channels_last=p.channels_last,
                        compiled=p.compiled,
                        fused=p.fused,
                        batch_size=config.batch_size,
                        image_size=config.image_size,
                        images_per_s=config.batch_size / seconds,
                        ms_per_step=seconds * 1e3,
                        best_images_per_s=config.batch_size / min(rounds[p.spec]),
                        round_seconds=tuple(rounds[p.spec]),
                        gflop_per_image=gflop,
                        achieved_gflops=achieved,
                        peak_gflops=peak,
                        percent_of_peak=100 * achieved / peak if peak else None,
                        peak_memory_mb=p.peak_memory / 2**20 if p.peak_memory is not None else None,
                        compile_s=p.compile_s,
                        layout_probe_s=p.layout_probe,
                    )
                )
            del prepared
    machine["load_average_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    peaks = {
        precision: {case: statistics.median(values) for case, values in cases.items()}
        for precision, cases in peak_samples.items()
    }
    return BenchResult(config=config, rows=tuple(rows), peaks=peaks, machine=machine)
