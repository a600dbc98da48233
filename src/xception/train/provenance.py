"""Where a number came from: the git commit and the software and hardware that produced a run."""

from __future__ import annotations

import functools
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch


@functools.cache
def git_commit() -> str:
    """The commit of this source tree, with "-dirty" when it has uncommitted changes, or "unknown".
    Read once per process: every checkpoint of a run records the code it started with."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def environment(world_size: int) -> dict[str, Any]:
    """Versions, devices and the command line, for the run directory."""
    import torchvision

    return {
        "git_commit": git_commit(),
        "command": " ".join(sys.argv),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "world_size": world_size,
    }
