"""Read the tensors of a safetensors or torch.save file, never unpickling anything but tensors."""

from __future__ import annotations

import os
import pickle

import torch

from xception.models.weights.sniff import WeightFormat

# Keys under which training scripts commonly nest the state dict of a checkpoint.
_NESTED_STATE_KEYS = ("state_dict", "model", "model_state_dict", "state_dict_ema")


def read_tensor_file(path: str | os.PathLike, fmt: WeightFormat) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(name -> tensor on the CPU, safetensors metadata or {}) of a "safetensors" or "torch" file.

    torch.save files load with ``weights_only=True``: tensors, numbers, strings and containers
    only. A checkpoint that nests its state dict under "state_dict" / "model" is unwrapped, and a
    DistributedDataParallel "module." prefix is removed.
    """
    if fmt == "safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                return {key: f.get_tensor(key) for key in f.keys()}, dict(f.metadata() or {})
        except (SafetensorError, OSError) as error:
            raise ValueError(f"{str(path)!r} could not be read as safetensors ({error}); the file may be truncated") from None
    if fmt != "torch":
        raise ValueError(f"read_tensor_file reads safetensors and torch files, not {fmt!r}")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"{str(path)!r} holds Python objects other than tensors, which are not loaded for safety "
            f"({str(error).splitlines()[0]}); save only model.state_dict(), or convert it to safetensors"
        ) from None
    except (RuntimeError, EOFError, OSError) as error:
        raise ValueError(f"{str(path)!r} could not be read by torch.load ({error}); the file may be truncated") from None
    for key in _NESTED_STATE_KEYS:
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
            break
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise ValueError(
            f"{str(path)!r} is not a state dict (a mapping of names to tensors); save model.state_dict()"
        )
    return {key.removeprefix("module."): value for key, value in loaded.items()}, {}
