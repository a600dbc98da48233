"""Image files: the one way this project opens an image (training, evaluation, `predict`, the data
tools), and turning a model input back into an 8-bit image to write datasets to disk.

`load_image` gives 8-bit grayscale (L) or RGB whatever the file holds:
- the EXIF orientation is applied, so a phone photo comes out upright, as a viewer shows it;
- 16-bit pixels (PNG, TIFF, PGM; PIL modes I;16 and I) keep their high byte, v >> 8, which is what
  PIL itself does for 16-bit colour PNGs, so 65535 is white and nothing saturates;
- transparency (RGBA, LA, palette images with a transparent colour) is composited onto white, as
  on a page: a transparent pixel is white whatever colour it stores;
- CMYK becomes RGB by PIL's formula R = 255 - C - K + C * K / 255 (embedded ICC profiles are
  not applied, as in torchvision and Keras);
- colour to grayscale is PIL's ITU-R 601-2 luma, 0.299 R + 0.587 G + 0.114 B; grayscale to RGB
  repeats the channel; palette, 1-bit, YCbCr, LAB and HSV go through PIL's conversion;
- multi-frame files (GIF, TIFF) give their first frame;
- 32-bit float pixels (mode F) have no defined range and are refused.
A file that cannot be read this way (empty, truncated, not an image, over PIL's pixel limit
`Image.MAX_IMAGE_PIXELS`, a decompression-bomb guard) raises `UnreadableImageError` naming it.
"""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from xception.errors import UserError

# PIL mode of each supported number of input channels.
MODES: dict[int, str] = {1: "L", 3: "RGB"}
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_TRANSPARENT = ("RGBA", "LA", "PA", "RGBa", "La")
BACKGROUND = 255  # the grey level transparency is composited onto (white)


class UnreadableImageError(UserError, ValueError):
    """An image file that exists but cannot be decoded (empty, truncated, not an image, too many
    pixels). `path` names it (a file, or a sample of a shard), `reason` says what is wrong. Plain
    arguments, so it pickles across DataLoader worker processes."""

    def __init__(self, path: str, reason: str, advice: str = "replace or delete the file") -> None:
        super().__init__(path, reason, advice)
        self.path, self.reason, self.advice = path, reason, advice

    def __str__(self) -> str:
        return f"cannot read image {self.path}: {self.reason}; {self.advice}"


def load_image(source: str | os.PathLike | BinaryIO, *, in_channels: int, name: str | None = None) -> Image.Image:
    """The fully decoded image in `source` (a path or a binary file), upright, as 8-bit L (1 channel)
    or RGB (3), converted as the module docstring says.

    Raises UnreadableImageError naming `name` (default: the path) when it cannot be read, so that a
    bad file in a dataset of millions is found from the message alone.
    """
    where = name or str(source)
    try:
        with Image.open(source) as image:
            image.load()  # decodes every pixel: truncation shows here
            return _to_mode(ImageOps.exif_transpose(image), MODES[in_channels])
    except Image.DecompressionBombError as error:
        raise UnreadableImageError(
            where, f"{str(error).rstrip('.')} (PIL's guard: at most 2 x Image.MAX_IMAGE_PIXELS)",
            "resize it, or raise PIL.Image.MAX_IMAGE_PIXELS if you trust the file",
        ) from None
    except FileNotFoundError:
        raise UnreadableImageError(where, "the file does not exist") from None
    except UnidentifiedImageError:
        raise UnreadableImageError(where, _unidentified(source)) from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as error:
        raise UnreadableImageError(where, f"{type(error).__name__}: {error}") from None


def _unidentified(source) -> str:
    """Why PIL found no image format in `source`."""
    empty = source.getbuffer().nbytes == 0 if isinstance(source, io.BytesIO) else (
        isinstance(source, (str, os.PathLike)) and os.path.getsize(source) == 0)
    if empty:
        return "the file is empty (0 bytes)"
    return "PIL does not recognise it as an image (not an image, or a format PIL cannot read)"


def _to_mode(image: Image.Image, mode: str) -> Image.Image:
    """`image` in 8-bit `mode` ("L" or "RGB")."""
    if image.mode == "F":
        raise ValueError("32-bit float pixels (PIL mode F) have no defined range; save it as 8 or 16 bit")
    if image.mode in _SIXTEEN_BIT:
        high_byte = np.asarray(image).astype(np.int64).clip(0, 65535) >> 8
        image = Image.fromarray(high_byte.astype(np.uint8), mode="L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in _TRANSPARENT:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (BACKGROUND,) * 3 + (255,)), rgba)
    return image.convert(mode)


class ImageLoader:
    """`load_image` with a fixed channel count, as a picklable callable for DataLoader workers."""

    def __init__(self, *, in_channels: int) -> None:
        self.in_channels = in_channels

    def __call__(self, path: str | Path) -> Image.Image:
        return load_image(path, in_channels=self.in_channels)


def to_pil_image(image: torch.Tensor) -> Image.Image:
    """A model input (C, H, W) in [-1, 1] with C = 1 or 3 -> the 8-bit PIL image it was made from.

    The inverse of x / 127.5 - 1 up to rounding, exact for images that came from 8-bit pixels without
    resampling (evaluation pipelines at the stored size): used to write datasets back to disk.
    """
    if image.ndim != 3 or image.shape[0] not in MODES:
        raise ValueError(f"expected an image (C, H, W) with C = 1 or 3, got {tuple(image.shape)}")
    pixels = ((image.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    array = pixels[0].numpy() if image.shape[0] == 1 else pixels.permute(1, 2, 0).contiguous().numpy()
    return Image.fromarray(array)  # 2-D uint8 gives mode L, (H, W, 3) gives RGB
