"""The demonstration run behind `xception demo` / `make demo`: the small Xception on Fashion-MNIST.

It obtains Fashion-MNIST by itself (Debian's `dataset-fashion-mnist` package when apt-get is usable,
else the official download), trains `xception_small` with the `fashion_mnist_demo` recipe and
evaluates on the official 10,000 test images.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

from xception.data import DataConfig
from xception.data.fashion_mnist import DEBIAN_DIR, ensure_fashion_mnist
from xception.train.config import TrainConfig

log = logging.getLogger(__name__)

DEBIAN_PACKAGE = "dataset-fashion-mnist"


def obtain_fashion_mnist(path: str | None = None) -> Path:
    """The Fashion-MNIST directory: `path`, Debian's package (installed now when apt-get is usable),
    or the official download; else a FileNotFoundError that says exactly what to do."""
    try:
        return ensure_fashion_mnist(path, download=False)
    except FileNotFoundError:
        if path is not None:
            raise
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        log.info("installing Fashion-MNIST with apt-get install %s", DEBIAN_PACKAGE)
        for command in (["apt-get", "install", "-y", "-q", DEBIAN_PACKAGE], ["apt-get", "update", "-q"],
                        ["apt-get", "install", "-y", "-q", DEBIAN_PACKAGE]):
            done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                                  env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
            if command[1] == "install" and done.returncode == 0:
                break
        try:
            return ensure_fashion_mnist(None, download=False)
        except FileNotFoundError:
            log.info("apt-get could not install %s; trying the official download", DEBIAN_PACKAGE)
    try:
        return ensure_fashion_mnist(None, download=True)
    except (FileNotFoundError, OSError) as error:
        raise FileNotFoundError(
            f"could not obtain Fashion-MNIST ({error}). Do one of: `sudo apt-get install {DEBIAN_PACKAGE}` "
            f"(files in {DEBIAN_DIR}); or download train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
            "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz from "
            "https://github.com/zalandoresearch/fashion-mnist (data/fashion) into a directory DIR and run "
            "`xception demo --data DIR`."
        ) from None


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
