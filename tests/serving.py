"""What the server tests share: small weights for photos, the photos, and `xception serve` started as
a real process on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from PIL import Image

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera")  # camera: grayscale, made RGB by load_image


def write_tiny_weights(path: Path, *, image_size: int = 32, num_classes: int = 7, seed: int = 0) -> Path:
    """Random xception_small weights (width 1/8) for RGB photos, in this project's format, with
    class names and an ImageNet-style preparation (bicubic resize and centre crop to `image_size`)."""
    import torch

    from xception.models import create_model
    from xception.models.weights import save_weights

    torch.manual_seed(seed)
    model = create_model("xception_small", num_classes=num_classes, in_channels=3, width=0.125, middle_repeats=1)
    with torch.no_grad():  # BatchNorm statistics away from (0, 1), so that folding them is exercised
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 2.0)
            if isinstance(module, torch.nn.Linear):  # confident answers: top-5 order and values well apart
                module.weight.mul_(40)
    metadata = {"class_names": [f"class {k}" for k in range(num_classes)],
                "data": {"source": "imagenet", "path": None, "image_size": image_size, "in_channels": 3,
                         "crop_fraction": 0.875, "interpolation": "bicubic"}}
    return save_weights(model.eval(), path, metadata=metadata)


def write_photos(folder: Path) -> list[Path]:
    """scikit-image's photographs as JPEG files."""
    from skimage import data as photos

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in PHOTOS:
        paths.append(folder / f"{name}.jpg")
        Image.fromarray(getattr(photos, name)()).save(paths[-1], quality=95)
    return paths


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServerProcess:
    """`xception serve --weights W ARGS` in a child process on a free 127.0.0.1 port, ready when
    constructed (its /v2/health/ready answers 200)."""

    def __init__(self, weights: Path, *args: str, timeout_s: float = 180.0, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                                           os.environ.get("PYTHONPATH", "")])}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "xception.cli", "serve", "--weights", str(weights), "--port", str(self.port),
             *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"xception serve exited with {self.process.returncode}:\n{self.process.stdout.read()}")
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"xception serve was not ready after {timeout_s} s")

    def stop(self, timeout_s: float = 120.0) -> tuple[int, str]:
        """SIGTERM, then its exit status and everything it printed."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            output, _ = self.process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
        return self.process.returncode, output

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
