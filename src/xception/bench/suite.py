"""The side-by-side benchmark: every contender in the same run, interleaved, median of repeats.

For each mode (training, inference) and precision, all contenders are built and warmed up, then
`repeats` rounds run; in each round the machine's convolution peak is measured and every
contender runs `iterations` steps, one after the other. Background load therefore hits all
contenders (and the peak) alike, and the ratios between them stay meaningful on a shared machine.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import platform
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

import torch

from xception.bench.contenders import (
    Contender,
    build_model,
    calibrate_batchnorm,
    check_installed,
    forward_gflop,
    parse_contender,
    prepare_for_inference,
)
from xception.bench.memory import step_peak_memory
from xception.bench.peak import measure_peak
from xception.bench.steps import fixed_batch, make_step
from xception.cpu import cpu_has_native_bf16
from xception.runtime import Precision, retain_freed_memory, synchronize

log = logging.getLogger(__name__)

Mode = Literal["train", "infer"]
Layout = Literal["best", "channels_last", "contiguous"]


@dataclass(frozen=True)
class BenchConfig:
    """What to measure. `layout="best"` times one step in each memory layout and keeps the faster."""

    models: tuple[str, ...]
    batch_size: int
    image_size: int
    precisions: tuple[Precision, ...]  # int8: inference of this project's models only
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
    interleave_precisions: bool = False  # one set of rounds for all precisions of a mode (more memory)


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
    runtime: str = "torch"
    settings: str = ""  # the runtime's settings in words (deployment runtimes and int8)
    # Inference: the largest |logit - eager fp32 logit| on the benchmark batch, and that over the
    # largest |eager fp32 logit|.
    max_abs_error: float | None = None
    relative_error: float | None = None


@dataclass(frozen=True)
class BenchResult:
    config: BenchConfig
    rows: tuple[BenchRow, ...]
    peaks: dict[str, dict[str, float]]  # precision -> {case: median GFLOP/s, "peak": best}
    machine: dict[str, Any]
    skipped: tuple[dict[str, str], ...] = ()  # {model, mode, precision, reason} of each contender not run

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
        return cls(config=config, rows=tuple(rows), peaks=data["peaks"], machine=data["machine"],
                   skipped=tuple(data.get("skipped", ())))


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
    for module in ("torchvision", "timm", "onnxruntime", "openvino", "nncf", "torchao"):
        try:
            info[module] = importlib.metadata.version(module)
        except importlib.metadata.PackageNotFoundError:
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


INFERENCE_ONLY = "inference only"


class Unavailable(Exception):
    """A contender that cannot run in this mode and precision here; the message says why."""


def unavailable_reason(contender: Contender, mode: Mode, precision: str, device: torch.device) -> str | None:
    """Why `contender` cannot run in `mode` and `precision` on `device`, or None when it can."""
    from xception.deploy.runtimes import install_hint, missing_modules, no_precision_reason

    deployed = contender.runtime != "torch" or precision == "int8"
    if deployed and mode == "train":
        return INFERENCE_ONLY
    if precision == "int8" and not contender.is_ours:
        return "int8 is built for this project's models only"
    if deployed and device.type != "cpu":
        return "the deployment runtimes and int8 run on the CPU here"
    reason = no_precision_reason(contender.runtime, precision)  # type: ignore[arg-type]
    if reason is not None:
        return reason
    if contender.runtime == "openvino" and precision == "bf16" and not cpu_has_native_bf16():
        return "OpenVINO bf16 needs native bf16 (avx512_bf16/AMX)"
    missing = missing_modules(contender.runtime, precision) if deployed else []  # type: ignore[arg-type]
    if missing:
        return f"needs {', '.join(missing)}: {install_hint(contender.runtime)}"  # type: ignore[arg-type]
    return None


def _errors(output: torch.Tensor, reference: torch.Tensor) -> tuple[float, float]:
    """(max abs error, relative error) of `output` against the fp32 `reference` logits."""
    difference = float((output.detach().float().cpu().double() - reference.double()).abs().max())
    return difference, difference / max(float(reference.abs().max()), 1e-30)


class _Prepared:
    """One contender ready to run in one mode and precision: its step, layout, errors and metadata."""

    def __init__(self, spec: str, mode: Mode, precision: Precision, config: BenchConfig, device: torch.device,
                 workdir: str):
        contender = parse_contender(spec)
        reason = unavailable_reason(contender, mode, precision, device)
        if reason is not None:
            raise Unavailable(reason)
        self.spec = spec
        self.runtime = contender.runtime
        self.settings = ""
        torch.manual_seed(0)  # the same weights in every precision and runtime
        model = build_model(contender, num_classes=config.num_classes)
        self.forward_gflop = forward_gflop(model, config.image_size)
        training = mode == "train"
        self.reference: torch.Tensor | None = None
        images = fixed_batch(config.batch_size, config.image_size, config.num_classes)[0]
        if not training:
            model = calibrate_batchnorm(model, images)
            with torch.no_grad():
                self.reference = model(images)  # eager fp32
        self.layout_probe: dict[str, float] = {}
        if contender.runtime != "torch" or precision == "int8":
            self._prepare_engine(model, contender, precision, config, images, workdir)
        else:
            self._prepare_torch(model, contender, mode, precision, config, device)
        for _ in range(config.warmup):
            self.step()
        self.errors = _errors(self.step(), self.reference) if self.reference is not None else (None, None)
        # Inductor's CPU code allocates its buffers outside the profiler's view: not measured;
        # nor is the memory of other runtimes.
        measurable = config.measure_memory and not (self.compiled and device.type == "cpu") and not self.settings
        self.peak_memory = step_peak_memory(self.step, device) if measurable else None

    def _prepare_torch(self, model, contender: Contender, mode: Mode, precision, config: BenchConfig, device) -> None:
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
        channels_last = config.layout != "contiguous"
        if config.layout == "best":
            for name, flag in (("contiguous", False), ("channels_last", True)):
                probe = make_step(model, channels_last=flag, compile=False, **options)
                probe()  # first call: primitive creation, allocator growth
                self.layout_probe[name] = _time_steps(probe, device, 1)
            channels_last = self.layout_probe["channels_last"] <= self.layout_probe["contiguous"]
        self.channels_last = channels_last
        self.step = make_step(model, channels_last=channels_last, compile=self.compiled, **options)
        self.compile_s = self._first_call_seconds(device) if self.compiled else None

    def _prepare_engine(self, model, contender: Contender, precision, config: BenchConfig, images, workdir) -> None:
        """An onnxruntime / OpenVINO engine from the ONNX export, or an int8 one; the first call
        (compilation for PT2E, graph preparation for the runtimes) is timed as `compile_s`."""
        from xception.deploy.build import build_engine

        calibration = fixed_batch(config.batch_size, config.image_size, config.num_classes, seed=1)[0]
        start = time.perf_counter()
        engine = build_engine(model, runtime=contender.runtime, precision=precision, device=torch.device("cpu"),  # type: ignore[arg-type]
                              image_size=config.image_size, workdir=workdir, threads=config.threads,
                              calibration=calibration if precision == "int8" else None)
        build_s = time.perf_counter() - start
        self.settings = engine.description
        self.fused = True
        self.compiled = contender.runtime == "torch"
        self.channels_last = contender.runtime == "torch"
        self.step = lambda: engine(images)
        self.compile_s = build_s + self._first_call_seconds(torch.device("cpu"))

    def _first_call_seconds(self, device: torch.device) -> float:
        synchronize(device)
        start = time.perf_counter()
        self.step()
        synchronize(device)
        return time.perf_counter() - start


def _row(p: _Prepared, mode: Mode, precision: Precision, round_seconds: list[float], config: BenchConfig,
         *, peak: float | None) -> BenchRow:
    seconds = statistics.median(round_seconds)
    gflop = p.forward_gflop * (3 if mode == "train" else 1)
    achieved = gflop * config.batch_size / seconds
    return BenchRow(
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
        best_images_per_s=config.batch_size / min(round_seconds),
        round_seconds=tuple(round_seconds),
        gflop_per_image=gflop,
        achieved_gflops=achieved,
        peak_gflops=peak,
        percent_of_peak=100 * achieved / peak if peak else None,
        peak_memory_mb=p.peak_memory / 2**20 if p.peak_memory is not None else None,
        compile_s=p.compile_s,
        layout_probe_s=p.layout_probe,
        runtime=p.runtime,
        settings=p.settings,
        max_abs_error=p.errors[0],
        relative_error=p.errors[1],
    )


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
    skipped: list[dict[str, str]] = []
    workdir = tempfile.TemporaryDirectory(prefix="xception-bench-")  # the ONNX exports
    # Each phase's contenders share their rounds; with `interleave_precisions` a mode's precisions
    # share them too, so that ratios across precisions (int8 over bf16) see the same load.
    if config.interleave_precisions:
        phases = [[(mode, precision) for precision in config.precisions] for mode in config.modes]
    else:
        phases = [[(mode, precision)] for mode in config.modes for precision in config.precisions]
    for phase in phases:
        prepared: list[tuple[Mode, Precision, _Prepared]] = []
        for mode, precision in phase:
            for spec in config.models:
                log.info("preparing %s (%s, %s)", spec, mode, precision)
                try:
                    prepared.append((mode, precision, _Prepared(spec, mode, precision, config, device, workdir.name)))
                except Unavailable as reason:
                    skipped.append(dict(model=spec, mode=mode, precision=precision, reason=str(reason)))
                    log.info("skipped %s (%s, %s): %s", spec, mode, precision, reason)
        rounds: dict[tuple[str, str], list[float]] = {(precision, p.spec): [] for _, precision, p in prepared}
        # The machine's int8 peak is not measured (`measure_peak` knows floating point only).
        measured = sorted({precision for _, precision, _ in prepared if precision != "int8"}) if config.measure_peak else []
        for r in range(config.repeats):
            for precision in measured:
                for case, value in measure_peak(device, precision=precision).items():
                    peak_samples.setdefault(precision, {}).setdefault(case, []).append(value)
            for _, precision, p in prepared:
                rounds[precision, p.spec].append(_time_steps(p.step, device, config.iterations))
            log.info("round %d/%d: %s", r + 1, config.repeats, ", ".join(
                f"{s} {precision} {config.batch_size / t[-1]:.2f} img/s" for (precision, s), t in rounds.items()))
        for mode, precision, p in prepared:
            rows.append(_row(p, mode, precision, rounds[precision, p.spec], config,
                             peak=statistics.median(peak_samples[precision]["peak"]) if precision in measured else None))
        del prepared
    workdir.cleanup()
    machine["load_average_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    peaks = {
        precision: {case: statistics.median(values) for case, values in cases.items()}
        for precision, cases in peak_samples.items()
    }
    return BenchResult(config=config, rows=tuple(rows), peaks=peaks, machine=machine, skipped=tuple(skipped))
