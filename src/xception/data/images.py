"""Opening an image file, with an error that names the file when it cannot be decoded."""

from __future__ import annotations

from pathlib import Path

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
