"""The demonstration run behind `xception demo` / `make demo`: the small Xception on Fashion-MNIST.

It obtains Fashion-MNIST by itself (Debian's `dataset-fashion-mnist` package when apt-get is usable,
else the official download), trains `xception_small` with the `fashion_mnist_demo` recipe and
evaluates on the official 10,000 test images.
"""

from __future__ import annotations

import os

from xception.data import DataConfig
from xception.train.config import TrainConfig


def idle_cpu_threads() -> int:
    """CPU threads worth using now: the CPUs of this process minus the busy ones (the 1-minute load
    average, rounded), at least 1. On a shared machine two OpenMP threads that keep waiting for each
    other are far slower than one: measured on 2 busy cores, 1 thread 600-630 images/s, 2 threads
    34-51 images/s (docs/training.md)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    busy = round(os.getloadavg()[0]) if hasattr(os, "getloadavg") else 0
    return max(1, cpus - busy)


def demo_config(*, data_path: str, out_dir: str, long: bool = False, device: str | None = None,
                epochs: float | None = None, progress: bool = True) -> TrainConfig:
    """The demo's run: `xception_small` on 28 x 28 grayscale Fashion-MNIST with the
    `fashion_mnist_demo` recipe, evaluated once at the end (each evaluation of the 10,000 test
    images costs ~10 s on 2 cores). `long`: the `fashion_mnist_long` preset (60 epochs), four times
    as wide (width 1.0), random erasing on half the training images, evaluated every epoch.
    Measured figures: docs/training.md."""
    if long:
        return TrainConfig(
            data=DataConfig(source="fashion_mnist", path=data_path, image_size=28, in_channels=1,
                            erase_probability=0.5),
            model="xception_small", model_overrides={"width": 1.0}, recipe="fashion_mnist_long",
            epochs=epochs, batch_size=256, device=device, out_dir=out_dir, progress=progress,
            cpu_threads=idle_cpu_threads(),
        )
    return TrainConfig(
        data=DataConfig(source="fashion_mnist", path=data_path, image_size=28, in_channels=1),
        model="xception_small", recipe="fashion_mnist_demo", epochs=epochs,
        # 256 rather than 128: a few % more images/s on 2 cores, and the lr scales with it (recipe)
        batch_size=256, device=device, out_dir=out_dir, evaluate_during_training=False, progress=progress,
        # Fashion-MNIST's batched in-memory pipeline is cheap; a worker process would only compete
        # with the training threads for 2 cores.
        cpu_threads=idle_cpu_threads(), num_workers=0,
    )
