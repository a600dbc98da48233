"""Segmentation: mean IoU against torchmetrics, the per-pixel mosaic labels, and the training
command end to end (`xception train --task segmentation`)."""

import json

import numpy as np
import pytest
import torch

from xception.data.batch_transforms import TensorPipeline
from xception.data.mosaic import EMPTY, MosaicImages
from xception.data.mosaic_masks import FOREGROUND_THRESHOLD, MosaicMasks
from xception.metrics.segmentation import confusion_matrix, mean_iou, per_class_iou

torchmetrics = pytest.importorskip("torchmetrics")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mean_iou_matches_torchmetrics_jaccard_with_absent_classes(seed):
    from torchmetrics.classification import MulticlassJaccardIndex

    generator = torch.Generator().manual_seed(seed)
    targets = torch.randint(0, 6, (4, 16, 16), generator=generator)  # classes 6..8 never occur
    predictions = torch.where(torch.rand(4, 16, 16, generator=generator) < 0.6, targets,
                              torch.randint(0, 7, (4, 16, 16), generator=generator))
    confusion = confusion_matrix(predictions, targets, 9)
    macro = MulticlassJaccardIndex(num_classes=9, average="macro")
    per_class = MulticlassJaccardIndex(num_classes=9, average="none")
    macro.update(predictions, targets), per_class.update(predictions, targets)
    assert mean_iou(confusion) == pytest.approx(float(macro.compute()), abs=1e-6)
    ours = per_class_iou(confusion)
    present = ~ours.isnan()
    assert present.tolist() == [True] * 7 + [False] * 2  # class 6 is predicted only: IoU 0
    torch.testing.assert_close(ours[present].float(), per_class.compute()[present])


def test_mean_iou_of_a_hand_made_case():
    # class 0: 2 agree, 1 predicted as 1 -> IoU 2/3; class 1: 1 agrees, 1 extra -> 1/2.
    targets = torch.tensor([0, 0, 0, 1])
    predictions = torch.tensor([0, 0, 1, 1])
    assert mean_iou(confusion_matrix(predictions, targets, 2)) == pytest.approx((2 / 3 + 1 / 2) / 2)


_FOREGROUND_INPUT = (FOREGROUND_THRESHOLD - 0.5) / 127.5 - 1  # the threshold on the model's [-1, 1] scale


def _tiny_mosaics() -> MosaicImages:
    source = torch.zeros(2, 28, 28, dtype=torch.uint8)
    source[0, 5:10, 5:10] = 200  # garment of class 3
    source[0, 12, 12] = FOREGROUND_THRESHOLD - 1  # a faint halo pixel: background
    source[1, 20:25, 0:3] = 90  # garment of class 7
    layouts = torch.tensor([[0, EMPTY, EMPTY, 1]])  # top-left item 0, bottom-right item 1
    pipeline = TensorPipeline(image_size=56, in_channels=1, augment=False, padding=0, erase_probability=0.0)
    return MosaicImages(source, torch.tensor([3, 7]), layouts, grid=2, num_classes=10, pipeline=pipeline)


def test_mosaic_masks_label_foreground_pixels_with_their_tiles_class():
    image, mask = MosaicMasks(_tiny_mosaics(), augment=False, padding=0)[0]
    expected = torch.zeros(56, 56, dtype=torch.long)
    expected[5:10, 5:10] = 3 + 1
    expected[28 + 20 : 28 + 25, 28:31] = 7 + 1
    assert torch.equal(mask, expected)
    assert image.shape == (1, 56, 56) and torch.equal(image[0] > _FOREGROUND_INPUT, expected > 0)


def test_mosaic_masks_augmentation_moves_image_and_mask_together():
    dataset = MosaicMasks(_tiny_mosaics(), augment=True, padding=4)
    torch.manual_seed(0)
    items = dataset.__getitems__([0] * 16)
    moved = 0
    for image, mask in items:
        assert torch.equal(image[0] > _FOREGROUND_INPUT, mask > 0)
        moved += not torch.equal(mask, dataset.masks(torch.tensor([0]))[0])
    assert moved > 8


def test_mosaic_masks_refuse_a_resized_input():
    mosaics = _tiny_mosaics()
    mosaics.pipeline = TensorPipeline(image_size=64, in_channels=1, augment=False, padding=0, erase_probability=0.0)
    with pytest.raises(ValueError, match="--image-size 56"):
        MosaicMasks(mosaics, augment=False, padding=0)


@pytest.mark.slow
def test_train_task_segmentation_writes_mean_iou_and_masks_png(tmp_path, fashion_mnist, capsys):
    from xception.cli import main

    out = tmp_path / "run"
    code = main(["train", "--task", "segmentation", "--data", str(fashion_mnist), "--dataset", "mosaic_masks",
                 "--in-channels", "1", "--steps", "2", "--batch-size", "4", "--workers", "0", "--no-progress",
                 "--set", "data.mosaic_train_size=16", "--set", "data.mosaic_val_size=8", "--out", str(out)])
    assert code == 0
    final = json.loads((out / "final.json").read_text())
    assert 0.0 <= final["metrics"]["miou"] <= 1.0 and final["metrics"]["examples"] == 8
    assert (out / "masks.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "config.json").read_text())["train"]["model"] == "deeplabv3plus_small"
    # `xception eval` on the weights file alone finds the task, the data and the same mean IoU.
    capsys.readouterr()
    assert main(["eval", "--weights", str(out / "weights.safetensors"), "--json", "--data", str(fashion_mnist)]) == 0
    assert json.loads(capsys.readouterr().out)["miou"] == pytest.approx(final["metrics"]["miou"], abs=1e-6)


def test_predict_writes_the_mask_of_each_image(tmp_path, capsys):
    """`xception predict` on a mosaic PNG writes NAME.mask.png whose pixels are the argmax of the
    model's logits on x / 127.5 - 1 (the mosaics' preparation: no resize, no crop). Random weights
    with BatchNorm statistics from a batch: logits that vary from pixel to pixel."""
    from PIL import Image

    from xception.cli import main
    from xception.data.mosaic_masks import SEGMENTATION_CLASSES
    from xception.models import create_model
    from xception.models.trained import open_weights
    from xception.models.weights import save_weights

    torch.manual_seed(0)
    model = create_model("deeplabv3plus_small", num_classes=11, in_channels=1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None
    model.train()(torch.rand(8, 1, 56, 56) * 2 - 1)
    data = {"source": "mosaic_masks", "path": None, "image_size": 56, "in_channels": 1, "mosaic_grid": 2}
    weights = save_weights(model.eval(), tmp_path / "w.safetensors",
                           metadata={"class_names": list(SEGMENTATION_CLASSES), "data": data})

    pixels = np.zeros((56, 56), np.uint8)
    pixels[4:24, 6:22] = np.random.default_rng(0).integers(60, 256, (20, 16))
    pixels[30:50, 32:52] = 200
    Image.fromarray(pixels).save(tmp_path / "mosaic.png")
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "mosaic.png"), "--weights", str(weights), "--runtime", "torch",
                 "--precision", "fp32", "--out", str(tmp_path / "masks")]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"{tmp_path / 'mosaic.png'} -> {tmp_path / 'masks/mosaic.mask.png'} (56x56)"
    assert sum(float(line.split()[0]) for line in printed[1:]) == pytest.approx(1.0, abs=1e-3)
    written = np.asarray(Image.open(tmp_path / "masks/mosaic.mask.png"))
    model, _, _ = open_weights(weights)
    with torch.no_grad():
        expected = model(torch.from_numpy(pixels).float()[None, None] / 127.5 - 1).argmax(1)[0]
    assert written.shape == (56, 56) and np.array_equal(written, expected.numpy())


def test_mask_png_stores_class_indices_in_the_figures_colours(tmp_path):
    from PIL import Image

    from xception.tasks.mask_figure import save_mask_png

    mask = torch.tensor([[0, 1], [10, 3]])
    save_mask_png(tmp_path / "m.png", mask, num_classes=11)
    picture = Image.open(tmp_path / "m.png")
    assert picture.mode == "P" and picture.getpixel((0, 1)) == 10
    assert np.array_equal(np.asarray(picture), mask.numpy())
    rgb = picture.convert("RGB")
    assert rgb.getpixel((0, 0)) == (0, 0, 0)  # background: black
    assert rgb.getpixel((1, 0)) == (31, 119, 180)  # class 1: tab10's first colour, #1f77b4
    with pytest.raises(ValueError, match="at most 256 classes"):
        save_mask_png(tmp_path / "n.png", mask, num_classes=300)


def test_train_task_segmentation_refuses_a_classifier(tmp_path, fashion_mnist, capsys):
    from xception.cli import main

    assert main(["train", "--task", "segmentation", "--model", "xception_small", "--data", str(fashion_mnist),
              "--dataset", "mosaic_masks", "--in-channels", "1", "--steps", "1", "--batch-size", "4",
              "--workers", "0", "--set", "data.mosaic_train_size=8", "--set", "data.mosaic_val_size=4",
              "--out", str(tmp_path)]) == 2
    assert "needs a segmentation model, e.g. --model deeplabv3plus_small" in capsys.readouterr().err


@pytest.mark.slow
def test_fit_trains_a_segmentation_model_from_python_with_no_task_field(tmp_path, fashion_mnist):
    """The task comes from the model's registry entry: a library caller names the model only."""
    from xception.data import DataConfig
    from xception.train import TrainConfig, fit

    data = DataConfig(source="mosaic_masks", path=str(fashion_mnist), image_size=56, in_channels=1,
                      mosaic_train_size=16, mosaic_val_size=8)
    result = fit(TrainConfig(data=data, model="deeplabv3plus_small", recipe="mosaic_segmentation", steps=2,
                             batch_size=4, num_workers=0, progress=False, trackers=(),
                             out_dir=str(tmp_path / "run")))
    assert result.finished and 0.0 <= result.metrics["miou"] <= 1.0
    assert (tmp_path / "run" / "masks.png").is_file()


def test_resolve_train_values_applies_the_segmentation_presets_of_the_model():
    from xception.train.config import resolve_train_values

    values = resolve_train_values({"model": "deeplabv3plus_small", "data": {"path": None}})
    assert values["recipe"] == "mosaic_segmentation" and values["data"]["source"] == "mosaic_masks"
    assert values["data"]["image_size"] == 56 and "task" not in values
    assert resolve_train_values({}, task="segmentation")["model"] == "deeplabv3plus_small"
    classifier = resolve_train_values({"model": "xception", "task": "classification", "data": {}})
    assert classifier == {"model": "xception", "data": {"image_size": 299}}
    with pytest.raises(ValueError, match="needs a segmentation model"):
        resolve_train_values({"model": "xception", "task": "segmentation"})


def test_segmentation_task_refuses_the_per_image_scores_of_grouped_detection_metrics():
    # `xception eval --group-pattern` asks for them; a mask has no one score per image.
    from xception.tasks import build_task

    task = build_task("deeplabv3plus_small")
    assert task.name == "segmentation" and task.key_metric({"miou": 0.5}) == "miou"
    with pytest.raises(ValueError, match="grouped detection metrics are for classifiers"):
        task.evaluate(lambda images: images, [], device=torch.device("cpu"), num_classes=2, keep_scores=True)


@pytest.mark.slow
def test_train_mosaic_masks_with_val_split_validates_and_evaluates_on_held_out_items(tmp_path, fashion_mnist, capsys):
    """--val-split on the mosaics: the run validates on mosaics of held-out training items (no
    split.json: the cut is a function of data.seed and data.val_split), `xception eval` on its
    weights evaluates those same mosaics, and the weights' data with val_split removed is the test mosaics."""
    import dataclasses

    from xception.cli import main
    from xception.data import build_datasets
    from xception.data.config import recorded_data_config
    from xception.models.trained import open_weights

    out = tmp_path / "run"
    assert main(["train", "--task", "segmentation", "--data", str(fashion_mnist), "--dataset", "mosaic_masks",
                 "--in-channels", "1", "--steps", "1", "--batch-size", "4", "--workers", "0", "--no-progress",
                 "--val-split", "0.1", "--set", "data.mosaic_train_size=8", "--set", "data.mosaic_val_size=6",
                 "--out", str(out)]) == 0
    final = json.loads((out / "final.json").read_text())
    assert final["metrics"]["examples"] == 6 and not (out / "split.json").exists()
    capsys.readouterr()
    assert main(["eval", "--weights", str(out / "weights.safetensors"), "--json", "--data", str(fashion_mnist),
                 "--runtime", "torch", "--precision", "fp32"]) == 0
    assert json.loads(capsys.readouterr().out)["miou"] == pytest.approx(final["metrics"]["miou"], abs=1e-6)
    recorded = recorded_data_config(open_weights(out / "weights.safetensors").description)
    test = build_datasets(dataclasses.replace(recorded, val_split=None)).val
    assert recorded.val_split == 0.1 and test.mosaics.source.shape[0] == 10_000  # Fashion-MNIST's test images
