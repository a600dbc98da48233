"""Where PT2E int8 spends its time: one compiled int8 forward of `xception` profiled beside the
compiled bf16 one (the same weights, 299 px, batch 16), self CPU time grouped by kernel.

Issue 22 asks why int8 stays below VNNI's ~2x of bf16: this prints each kernel family's share of
each forward (oneDNN int8 pointwise and depthwise convolutions, the generated quantize /
dequantize / add / ReLU / pool kernels, layout reorders: every kernel above 1% of the forward, by
self CPU time, inductor's generated kernels each as its own event), so the gap can be read off.
Usage:

    .venv/bin/python benchmarks/int8_profile.py [--image-size 299] [--batch-size 16] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import torch
from torch.profiler import ProfilerActivity, profile


def profile_engine(engine, images: torch.Tensor, runs: int = 3) -> dict[str, float]:
    from torch._inductor import config as inductor_config

    with inductor_config.patch({"cpp.enable_kernel_profile": True}):  # one profiler event per generated kernel
        for _ in range(2):  # the first call compiles
            engine(images)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(runs):
            engine(images)
    return {event.key: event.self_cpu_time_total / runs / 1000 for event in prof.key_averages()}  # ms per forward


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=299)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default="xception")
    args = parser.parse_args(argv)
    sys.path.insert(0, os.path.dirname(__file__))
    from deploy import benchmark_model

    from xception.deploy.build import build_engine

    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    size = args.image_size
    images = torch.rand(args.batch_size, 3, size, size, generator=generator) * 2 - 1
    calibration = torch.rand(16, 3, size, size, generator=generator) * 2 - 1
    model = benchmark_model(args.model, calibration)
    print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as workdir:
        engines = {precision: build_engine(model, runtime="torch", precision=precision, device=torch.device("cpu"),
                                           image_size=size, workdir=workdir, threads=args.threads,
                                           calibration=calibration if precision == "int8" else None,
                                           torch_path="inductor")
                   for precision in ("bf16", "int8")}
        profiles = {precision: profile_engine(engine, images) for precision, engine in engines.items()}
    for precision, kernels in profiles.items():
        total = sum(kernels.values())
        print(f"\n{precision}: {total:.0f} ms of self CPU time per forward; the kernels above 1%:\n")
        print("| kernel | ms per forward | share |")
        print("|---|---:|---:|")
        for name, ms in sorted(kernels.items(), key=lambda item: -item[1]):
            if ms >= 0.01 * total:
                print(f"| `{name[:90]}` | {ms:.1f} | {100 * ms / total:.1f}% |")
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
