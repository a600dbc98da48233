"""The segfolder source: images with PNG masks of class indices (VOC's layout included), the same
geometric transform for image and mask, and label 255 left out of the loss and of mean IoU."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from xception.data import DataConfig, build_datasets
from xception.data.images import UnreadableImageError
from xception.data.segfolder import VOC_CLASSES
from xception.data.split_manifest import split_manifest
from xception.metrics.segmentation import confusion_matrix, mean_iou, per_class_iou


def block_mask(seed: int, height: int = 30, width: int = 40) -> np.ndarray:
    """Labels 0..2 in 10-pixel blocks, with a band of 255 (not labelled) along the top."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 3, (height // 10, width // 10))
    mask = np.kron(blocks, np.ones((10, 10), dtype=np.int64)).astype(np.uint8)
    mask[:2] = 255
    return mask


def image_of(mask: np.ndarray) -> Image.Image:
    """A grayscale picture whose level says the label: 40 + 80 x label (255 stays white)."""
    return Image.fromarray(np.where(mask == 255, 255, 40 + 80 * mask.astype(np.int64)).astype(np.uint8))


def write_simple(root, count: int, *, classes: list[str] | None = None):
    (root / "images").mkdir(parents=True), (root / "masks").mkdir()
    for i in range(count):
        mask = block_mask(i)
        image_of(mask).convert("RGB").save(root / "images" / f"img{i:02d}.png")
        Image.fromarray(mask).save(root / "masks" / f"img{i:02d}.png")
    if classes:
        (root / "classes.txt").write_text("\n".join(classes) + "\n")
    return root


def config(root, **overrides):
    return DataConfig(**{"source": "segfolder", "path": str(root), "image_size": 20, "in_channels": 1,
                         "resize": "squash", **overrides})


def test_segfolder_val_split_items_and_class_names(tmp_path):
    root = write_simple(tmp_path, 10, classes=["sky", "grass", "road"])
    datasets = build_datasets(config(root, val_split=0.3, seed=1))
    assert datasets.class_names == ["sky", "grass", "road"] and datasets.num_classes == 3
    assert (len(datasets.train), len(datasets.val)) == (7, 3)
    image, mask = datasets.val[0]
    assert image.shape == (1, 20, 20) and image.dtype == torch.float32
    assert mask.shape == (20, 20) and mask.dtype == torch.int64
    assert set(mask.unique().tolist()) <= {0, 1, 2, 255} and (mask[0] == 255).all()
    manifest = split_manifest(config(root, val_split=0.3, seed=1), datasets)
    assert len(manifest["val"]) == 3 and all(path.startswith("images/img") for path in manifest["val"])
    assert sorted(manifest["train"] + manifest["val"]) == [f"images/img{i:02d}.png" for i in range(10)]


def test_segfolder_class_numbers_from_the_largest_label(tmp_path):
    root = write_simple(tmp_path, 4)
    largest = max(int(np.max(block_mask(i)[block_mask(i) != 255])) for i in range(4))
    datasets = build_datasets(config(root, val_split=0.5))
    assert datasets.class_names == [str(c) for c in range(largest + 1)]


def test_segfolder_evaluation_mask_is_the_nearest_neighbour_resize(tmp_path):
    root = write_simple(tmp_path, 2, classes=["a", "b", "c"])
    datasets = build_datasets(config(root, val_split=0.5, image_size=20))
    image_path, mask_path = datasets.val.samples[0]
    _, mask = datasets.val[0]
    expected = np.asarray(Image.open(mask_path).resize((20, 20), Image.Resampling.NEAREST))
    assert np.array_equal(mask.numpy(), expected)


@pytest.mark.parametrize("resize", ["crop", "squash"])
def test_segfolder_training_moves_the_mask_with_its_image(tmp_path, resize):
    root = write_simple(tmp_path, 2, classes=["a", "b", "c"])
    datasets = build_datasets(config(root, val_split=0.5, image_size=24, resize=resize))
    _, whole = build_datasets(config(root, val_split=0.5, image_size=24, resize="squash", augment=False)).train[0]
    torch.manual_seed(0)
    masks = []
    for _ in range(30):
        image, mask = datasets.train[0]
        levels = ((image[0] + 1) * 127.5).round()
        # Each pixel's grey level is its label's (40 + 80 label; 255 for 255), except next to a label
        # edge, where the bilinear image blends two blocks and the nearest-neighbour mask picks one.
        expected = torch.where(mask == 255, 255, 40 + 80 * mask)
        disagree = (levels - expected).abs() > 2
        window = mask[None, None].float()
        edge = (F.max_pool2d(window, 3, 1, 1) != -F.max_pool2d(-window, 3, 1, 1))[0, 0]
        assert not (disagree & ~edge).any() and edge.float().mean() < 0.5
        assert set(mask.unique().tolist()) <= {0, 1, 2, 255}
        assert not (mask[-1] == 255).any()  # the unlabelled band stays at the top: no vertical flip
        masks.append(mask)
    if resize == "squash":  # the whole image, flipped or not
        plain = sum(torch.equal(m, whole) for m in masks)
        flipped = sum(torch.equal(m, whole.flip(-1)) for m in masks)
        assert plain + flipped == 30 and 5 < flipped < 25
    else:
        assert len({tuple(m.flatten().tolist()) for m in masks}) > 20


def test_segfolder_voc_layout_with_palette_masks(tmp_path):
    root = tmp_path / "VOC2012"
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / folder).mkdir(parents=True)
    palette = [value for c in range(256) for value in ((37 * c) % 256, (91 * c) % 256, (53 * c) % 256)]
    for i in range(5):
        mask = block_mask(i) * 5  # labels 0, 5, 10 and 255 (5 x 255 wraps: put 255 back)
        mask[:2] = 255
        picture = Image.fromarray(mask, mode="L")
        picture.putpalette(palette)  # "P": colours for viewers, indices for us
        picture.save(root / "SegmentationClass" / f"2007_{i:06d}.png")
        image_of(block_mask(i)).convert("RGB").save(root / "JPEGImages" / f"2007_{i:06d}.jpg", quality=95)
    image_of(block_mask(9)).convert("RGB").save(root / "JPEGImages" / "2008_000001.jpg")  # no mask, not listed
    (root / "ImageSets/Segmentation/train.txt").write_text("2007_000000\n2007_000001\n2007_000002\n")
    (root / "ImageSets/Segmentation/val.txt").write_text("2007_000003\n2007_000004\n")
    datasets = build_datasets(config(root, in_channels=3, image_size=40, resize="squash"))
    assert datasets.class_names == list(VOC_CLASSES) and datasets.num_classes == 21
    assert (len(datasets.train), len(datasets.val)) == (3, 2)
    image, mask = datasets.val[1]
    assert image.shape == (3, 40, 40)
    expected = block_mask(4) * 5
    expected[:2] = 255
    # 40 x 30 -> 40 x 40: nearest rows of the original, the palette indices themselves.
    assert np.array_equal(mask.numpy(), np.asarray(Image.fromarray(expected).resize((40, 40), Image.Resampling.NEAREST)))
    with pytest.raises(ValueError, match="leave out --val-split"):
        build_datasets(config(root, val_split=0.2))


def item_of(datasets, stem: str):
    """The (image, mask) item of the image `stem`, from whichever split holds it."""
    for split in (datasets.train, datasets.val):
        for index, (image_path, _) in enumerate(split.samples):
            if image_path.endswith(f"/{stem}.png"):
                return split[index]
    raise AssertionError(f"no image {stem}")


def test_segfolder_errors_name_the_file(tmp_path):
    root = write_simple(tmp_path / "a", 3, classes=["x", "y", "z"])
    with pytest.raises(ValueError, match="no validation split.*--val-split"):
        build_datasets(config(root))
    (root / "classes.txt").write_text("x\ny\n")
    with_label_2 = next(f"img{i:02d}" for i in range(3) if (block_mask(i) == 2).any())
    with pytest.raises(UnreadableImageError, match=f"{with_label_2}.png: label 2 is not one of the 2 classes"):
        item_of(build_datasets(config(root, val_split=0.5)), with_label_2)
    (root / "classes.txt").write_text("x\ny\nz\n")
    Image.fromarray(np.zeros((30, 40, 3), dtype=np.uint8)).save(root / "masks" / "img00.png")
    with pytest.raises(UnreadableImageError, match="img00.png: the mask is RGB, colours rather than class indices"):
        item_of(build_datasets(config(root, val_split=0.5)), "img00")
    Image.fromarray(np.zeros((10, 10), dtype=np.uint8)).save(root / "masks" / "img00.png")
    with pytest.raises(UnreadableImageError, match="the mask is 10x10 px, its image .*img00.png 40x30"):
        item_of(build_datasets(config(root, val_split=0.5)), "img00")
    (root / "masks" / "img01.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"without a mask.*\['img01'\]"):
        build_datasets(config(root, val_split=0.5))
    (root / "train.txt").write_text("img00\n")
    with pytest.raises(FileNotFoundError, match="go together"):
        build_datasets(config(root, val_split=0.5))


@pytest.mark.parametrize("seed", [0, 1])
def test_mean_iou_leaves_label_255_out_like_torchmetrics(seed):
    torchmetrics = pytest.importorskip("torchmetrics.classification")
    generator = torch.Generator().manual_seed(seed)
    targets = torch.randint(0, 5, (3, 16, 16), generator=generator)
    predictions = torch.where(torch.rand(3, 16, 16, generator=generator) < 0.6, targets,
                              torch.randint(0, 5, (3, 16, 16), generator=generator))
    targets[torch.rand(3, 16, 16, generator=generator) < 0.3] = 255
    confusion = confusion_matrix(predictions, targets, 5, ignore_index=255)
    assert int(confusion.sum()) == int((targets != 255).sum())
    reference = torchmetrics.MulticlassJaccardIndex(num_classes=5, average="none", ignore_index=255)
    reference.update(predictions, targets)
    torch.testing.assert_close(per_class_iou(confusion).float(), reference.compute())
    # What the model predicts on ignored pixels does not matter.
    other = torch.where(targets == 255, (predictions + 1) % 5, predictions)
    assert mean_iou(confusion_matrix(other, targets, 5, ignore_index=255)) == mean_iou(confusion)
    with pytest.raises(ValueError, match=r"class indices in \[0, 5\) or 255"):
        confusion_matrix(predictions, torch.full_like(targets, 7), 5, ignore_index=255)


@pytest.mark.parametrize("resize", ["crop", "squash"])
def test_segfolder_predict_prepares_images_as_validation_did(tmp_path, resize):
    from xception.data.images import load_image
    from xception.data.photo_eval import PhotoEvalInput

    root = write_simple(tmp_path, 2, classes=["a", "b", "c"])
    data = config(root, val_split=0.5, image_size=24, resize=resize, crop_fraction=0.8)
    datasets = build_datasets(data)
    image_path, _ = datasets.val.samples[0]
    # What `xception predict` builds from the recorded preparation of the weights.
    prepare = PhotoEvalInput(image_size=24, in_channels=1, crop_fraction=0.8, interpolation="bilinear", resize=resize)
    assert torch.equal(prepare(load_image(image_path, in_channels=1)), datasets.val[0][0])
