"""Preprocessing of in-memory uint8 images, a whole batch at a time (Fashion-MNIST and its mosaics).

Per-item transforms cost tens of microseconds of Python each; on a 2-core machine that is the
bottleneck of a small CNN. `TensorPipeline` prepares a batch of B images with a handful of tensor
operations instead: random crop with zero padding and horizontal flip (each image its own offsets and
coin), resize, [-1, 1] scaling, optional random erasing, channel repeat.
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F


def crop_flip(
    images: torch.Tensor, *, top: torch.Tensor, left: torch.Tensor, flip: torch.Tensor, padding: int
) -> torch.Tensor:
    """Zero-pad each image by `padding` on every side, crop back to its size at (top, left), then flip.

    images: (B, C, H, W), any dtype. top, left: (B,) integers in [0, 2 * padding]. flip: (B,) bool.
    Returns (B, C, H, W). Per image, the same as v2.functional.pad(padding, fill=0) -> crop(top, left,
    H, W) -> horizontal_flip when flip; one gather does the crop and the flip of every image.
    """
    # NOTE: transforms.v2 draws one set of random parameters per call, so a batched tensor would get
    # the same crop for every image; this gather is its per-image equivalent (tested against v2).
    batch, channels, height, width = images.shape
    padded = torch.nn.functional.pad(images, (padding, padding, padding, padding))
    padded_width = width + 2 * padding
    rows = top[:, None] + torch.arange(height, device=images.device)  # (B, H)
    columns = torch.arange(width, device=images.device)
    columns = torch.where(flip[:, None], width - 1 - columns, columns) + left[:, None]  # (B, W)
    # One flat gather per image is several times faster than 4-D advanced indexing on CPU.
    flat_index = (rows[:, :, None] * padded_width + columns[:, None, :]).view(batch, 1, height * width)
    flat = padded.reshape(batch, channels, -1).gather(2, flat_index.expand(batch, channels, height * width))
    return flat.view(batch, channels, height, width)


def random_crop_flip(images: torch.Tensor, *, padding: int) -> torch.Tensor:
    """`crop_flip` with offsets uniform in [0, 2 * padding] and a fair flip coin per image.

    Draws from torch's global generator, which DataLoader seeds per worker.
    """
    batch = images.shape[0]
    top = torch.randint(0, 2 * padding + 1, (batch,))
    left = torch.randint(0, 2 * padding + 1, (batch,))
    flip = torch.rand(batch) < 0.5
    device = images.device  # drawn on the CPU generator, so the stream is the same wherever the batch is
    return crop_flip(images, top=top.to(device), left=left.to(device), flip=flip.to(device), padding=padding)


class TensorPipeline:
    """uint8 images (B, H, W) or (B, 1, H, W) -> float32 model inputs (B, in_channels, S, S) in [-1, 1].

    Training (augment=True): random crop with `padding` and horizontal flip at the source resolution,
    then the resize to image_size S, then random erasing with probability `erase_probability` (after
    the [-1, 1] scaling, so the noise is on the model's scale); evaluation: the resize only.
    x / 127.5 - 1, as Keras' `preprocess_input` ("tf" mode). Grayscale is repeated over 3 channels
    when in_channels is 3 (after erasing, so every channel shows the same rectangle).
    """

    def __init__(
        self, *, image_size: int, in_channels: int, augment: bool, padding: int, erase_probability: float
    ) -> None:
        if not 0.0 <= erase_probability <= 1.0:
            raise ValueError(f"erase_probability must be in [0, 1], got {erase_probability}")
        self.image_size = image_size
        self.in_channels = in_channels
        self.augment = augment
        self.padding = padding
        self.erase_probability = erase_probability
        # Random erasing (Zhong et al., 2017) as torchvision's v2.RandomErasing (2-33% of the image,
        # aspect 0.3-3.3, normal noise), applied image by image: one call on a batch would erase the
        # same rectangle in every image. The Python loop (tens of microseconds per image) runs in
        # the DataLoader workers, and only when training.
        self.erase = v2.RandomErasing(p=erase_probability, value="random") if erase_probability > 0 else None
        self.scale = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=[0.5], std=[0.5])])

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8:
            raise TypeError(f"TensorPipeline expects uint8 images, got {images.dtype}")
        if images.ndim == 3:
            images = images[:, None]
        if self.augment:
            images = random_crop_flip(images, padding=self.padding)
        if images.shape[-2:] != (self.image_size, self.image_size):
            images = F.resize(images, [self.image_size, self.image_size], antialias=True)
        images = self.scale(images)
        if self.augment and self.erase is not None:
            images = torch.stack([self.erase(image) for image in images.unbind(0)])
        if self.in_channels != images.shape[1]:
            images = images.expand(-1, self.in_channels, -1, -1).contiguous()
        return images

    def __repr__(self) -> str:
        return (
            f"TensorPipeline(image_size={self.image_size}, in_channels={self.in_channels}, "
            f"augment={self.augment}, padding={self.padding}, erase_probability={self.erase_probability})"
        )


class PilToModelInput:
    """A PIL image -> the (in_channels, S, S) input of a `TensorPipeline` model (for `xception predict`).

    The image is made grayscale and resized (aspect ratio not kept) to the source's (height, width),
    then goes through the evaluation pipeline exactly as a stored image would.
    """

    def __init__(self, *, source_size: tuple[int, int], pipeline: TensorPipeline) -> None:
        if pipeline.augment:
            raise ValueError("PilToModelInput needs an evaluation pipeline (augment=False)")
        self.to_source = v2.Compose([v2.PILToTensor(), v2.Resize(list(source_size), antialias=True)])
        self.pipeline = pipeline

    def __call__(self, image) -> torch.Tensor:
        return self.pipeline(self.to_source(image.convert("L"))[None])[0]
