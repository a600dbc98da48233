"""Which kind of weight file a path holds, from its first bytes (the extension is only a hint)."""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Literal

WeightFormat = Literal["hdf5", "safetensors", "torch"]

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_ZIP_SIGNATURE = b"PK\x03\x04"  # torch.save's default container since PyTorch 1.6


def sniff_format(path: str | os.PathLike) -> WeightFormat:
    """"hdf5" (Keras files), "safetensors" or "torch" (a torch.save file, zip or legacy pickle).

    Raises FileNotFoundError for a missing path and ValueError for a file that is none of these.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"weight file {str(path)!r} does not exist; check the path")
    if path.is_dir():
        raise ValueError(f"{str(path)!r} is a directory; pass the weight file inside it")
    with path.open("rb") as f:
        head = f.read(9)
    if head.startswith(_HDF5_SIGNATURE):
        return "hdf5"
    if head.startswith(_ZIP_SIGNATURE) and path.suffix == ".keras":
        raise ValueError(
            f"{str(path)!r} is a whole Keras 3 model archive; save its weights with "
            "model.save_weights('NAME.weights.h5') and pass that file"
        )
    # safetensors: an 8-byte little-endian header length, then a JSON header that starts with "{".
    # Checked before the pickle byte: a header length like 0x3980 also starts with 0x80.
    if len(head) == 9 and head[8:9] == b"{":
        (header_length,) = struct.unpack("<Q", head[:8])
        if 0 < header_length <= path.stat().st_size - 8:
            return "safetensors"
    if head.startswith(_ZIP_SIGNATURE) or head[:1] == b"\x80":  # zip, or a pickle protocol >= 2 header
        return "torch"
    raise ValueError(
        f"{str(path)!r} is not a weight file this project reads (Keras HDF5, safetensors, or a "
        "torch.save state dict); it may be truncated or of another kind"
    )
