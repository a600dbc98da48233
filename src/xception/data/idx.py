"""Reading IDX files, the format of MNIST and Fashion-MNIST (LeCun et al.), plain or gzip-compressed.

Layout: two zero bytes, a type byte (0x08 = unsigned byte, the only type these datasets use), the
number of dimensions, then each dimension as a big-endian uint32, then the values in C order.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

UNSIGNED_BYTE = 0x08


def read_idx(path: str | Path) -> torch.Tensor:
    """The array stored in an IDX file (`.gz` is decompressed), as a uint8 tensor.

    Images files give (N, 28, 28), label files (N,). Raises ValueError naming the file when its header
    or length is wrong (a truncated download, an HTML error page saved under the name, ...).
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as file:
            data = file.read()
    except (OSError, EOFError) as error:
        raise ValueError(f"cannot read IDX file {path}: {error}; delete it and fetch it again") from error
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != UNSIGNED_BYTE:
        raise ValueError(
            f"{path} is not an unsigned-byte IDX file (bad header); delete it and fetch it again"
        )
    ndim = data[3]
    header_size = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(data[4:header_size], dtype=">u4"))
    expected = header_size + int(np.prod(shape))
    if len(data) != expected:
        raise ValueError(
            f"{path} holds {len(data)} bytes but its header {shape} needs {expected}: "
            "the file is truncated or corrupt; delete it and fetch it again"
        )
    array = np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape)
    return torch.from_numpy(array.copy())
