"""Image files: opening one, with an error that names the file when it cannot be decoded, and turning a
model input back into an 8-bit image to write datasets to disk."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError

# PIL mode of each supported number of input channels.
MODES: dict[int, str] = {1: "L", 3: "RGB"}


class UnreadableImageError(ValueError):
    """An image file that exists but cannot be decoded (corrupt, truncated, not an image)."""


def load_image(path: str | Path, *, in_channels: int) -> Image.Image:
    """The fully decoded image at `path`, converted to grayscale (1 channel) or RGB (3).

    Raises UnreadableImageError naming the file when PIL cannot decode all of it, so that a bad file
    in a dataset of millions is found from the message alone.
    """
    try:
        with Image.open(path) as image:
            return image.convert(MODES[in_channels])  # convert() decodes every pixel: truncation shows here
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise UnreadableImageError(
            f"cannot read image {path}: {error}. Replace or delete the file (check it with PIL.Image.open)."
        ) from error


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
