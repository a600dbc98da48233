"""The batched preprocessing of in-memory images, against torchvision's own per-image transforms."""

import pytest
import torch
from torchvision.transforms.v2 import functional as F

from xception.data.batch_transforms import PilToModelInput, TensorPipeline, crop_flip
from xception.data.in_memory import InMemoryImages


def test_crop_flip_matches_torchvision_pad_crop_flip_per_image():
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (16, 1, 7, 9), dtype=torch.uint8, generator=generator)
    padding = 3
    top = torch.randint(0, 2 * padding + 1, (16,), generator=generator)
    left = torch.randint(0, 2 * padding + 1, (16,), generator=generator)
    flip = torch.rand(16, generator=generator) < 0.5
    got = crop_flip(images, top=top, left=left, flip=flip, padding=padding)
    for i in range(16):
        expected = F.crop(F.pad(images[i], [padding], fill=0), int(top[i]), int(left[i]), 7, 9)
        if flip[i]:
            expected = F.horizontal_flip(expected)
        assert torch.equal(got[i], expected), i


def test_tensor_pipeline_evaluation_is_keras_tf_scaling():
    images = torch.arange(256, dtype=torch.uint8).reshape(4, 8, 8)
    pipeline = TensorPipeline(image_size=8, in_channels=1, augment=False, padding=2, erase_probability=0.0)
    expected = images.double()[:, None] / 127.5 - 1.0
    out = pipeline(images)
    assert out.dtype == torch.float32 and out.shape == (4, 1, 8, 8)
    assert torch.allclose(out.double(), expected, atol=1e-6)
    assert out.min() == -1.0 and out.max() == 1.0


def test_tensor_pipeline_repeats_grayscale_and_resizes_like_torchvision():
    images = torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    out = TensorPipeline(image_size=40, in_channels=3, augment=False, padding=2, erase_probability=0.0)(images)
    assert out.shape == (3, 3, 40, 40)
    resized = F.resize(images[1][None], [40, 40], antialias=True).double() / 127.5 - 1
    for channel in range(3):
        assert torch.allclose(out[1, channel].double(), resized[0], atol=1e-6)


def test_tensor_pipeline_augment_moves_pixels_only_in_training():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (64, 28, 28), dtype=torch.uint8)
    train = TensorPipeline(image_size=28, in_channels=1, augment=True, padding=2, erase_probability=0.0)(images)
    evaluation = TensorPipeline(image_size=28, in_channels=1, augment=False, padding=2, erase_probability=0.0)(images)
    unchanged = [torch.equal(train[i], evaluation[i]) for i in range(64)]
    # An image is unchanged only for offset (2, 2) and no flip: probability 1/50.
    assert sum(unchanged) < 10
    assert torch.equal(
        evaluation, TensorPipeline(image_size=28, in_channels=1, augment=False, padding=2, erase_probability=0.0)(images)
    )


def test_tensor_pipeline_random_offsets_cover_the_padding_range():
    torch.manual_seed(0)
    image = torch.zeros(1, 5, 5, dtype=torch.uint8)
    image[0, 2, 2] = 255  # a single bright pixel: its position after the crop gives the offsets
    images = image.expand(4000, 5, 5)
    out = TensorPipeline(image_size=5, in_channels=1, augment=True, padding=1, erase_probability=0.0)(images)
    positions = {tuple(int(v) for v in (out[i, 0] == 1).nonzero()[0]) for i in range(4000)}
    assert positions == {(r, c) for r in (1, 2, 3) for c in (1, 2, 3)}


def test_in_memory_images_batch_items_equal_single_items():
    images = torch.randint(0, 256, (10, 6, 6), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    labels = torch.arange(10) % 3
    dataset = InMemoryImages(
        images, labels, pipeline=TensorPipeline(image_size=6, in_channels=1, augment=False, padding=0, erase_probability=0.0)
    )
    batch = dataset.__getitems__([4, 7])
    for index, (image, label) in zip([4, 7], batch, strict=True):
        single_image, single_label = dataset[index]
        assert torch.equal(image, single_image) and label == single_label == int(labels[index])
        assert isinstance(label, int)


def test_pil_to_model_input_equals_the_stored_image_path():
    from PIL import Image

    images = torch.randint(0, 256, (1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    pipeline = TensorPipeline(image_size=32, in_channels=3, augment=False, padding=2, erase_probability=0.0)
    via_pil = PilToModelInput(source_size=(28, 28), pipeline=pipeline)(
        Image.fromarray(images[0].numpy()).convert("RGB")
    )
    assert via_pil.shape == (3, 32, 32)
    assert torch.equal(via_pil, pipeline(images)[0])  # a gray RGB image converts back to L exactly


def test_random_erasing_gives_each_image_its_own_rectangle_at_the_stated_rate():
    torch.manual_seed(0)
    images = torch.zeros(2000, 32, 32, dtype=torch.uint8)  # all -1 after scaling: erased pixels differ
    pipeline = TensorPipeline(image_size=32, in_channels=3, augment=True, padding=0, erase_probability=0.5)
    out = pipeline(images)
    changed = out != -1.0  # (B, 3, H, W)
    erased = changed.flatten(1).any(1)
    # Bernoulli(0.5) over 2000 images: 5 standard deviations are 0.056.
    assert abs(erased.float().mean().item() - 0.5) < 0.056
    # Every channel shows the same rectangle, as a grayscale image repeated after erasing.
    assert torch.equal(changed[:, 0], changed[:, 1]) and torch.equal(changed[:, 0], changed[:, 2])
    boxes = set()
    for mask in changed[erased, 0]:
        rows, columns = mask.any(1).nonzero()[:, 0], mask.any(0).nonzero()[:, 0]
        top, bottom, left, right = rows[0], rows[-1] + 1, columns[0], columns[-1] + 1
        assert mask[top:bottom, left:right].float().mean() > 0.99  # one filled rectangle (noise may hit -1)
        area = (bottom - top) * (right - left) / (32 * 32)
        # torchvision's default area range (2-33%), with rounding of the sides.
        assert 0.01 <= area <= 0.36
        boxes.add((int(top), int(bottom), int(left), int(right)))
    assert len(boxes) > 0.9 * int(erased.sum())  # not the same rectangle for the whole batch


def test_evaluation_never_erases():
    images = torch.randint(0, 256, (16, 28, 28), dtype=torch.uint8)
    erasing = TensorPipeline(image_size=28, in_channels=1, augment=False, padding=2, erase_probability=1.0)
    plain = TensorPipeline(image_size=28, in_channels=1, augment=False, padding=2, erase_probability=0.0)
    assert torch.equal(erasing(images), plain(images))
    with pytest.raises(ValueError, match="erase_probability"):
        TensorPipeline(image_size=28, in_channels=1, augment=True, padding=2, erase_probability=1.5)
