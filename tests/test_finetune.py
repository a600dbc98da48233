"""Fine-tuning: start from weights, a head-only phase, frozen BatchNorm, the optimizer's state, and
what a user gets at the end (`xception predict` with the data's class names)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tiny_classification import tiny_datasets
from tiny_image_folder import starting_weights, train_argv, write_image_folder
from xception import create_model
from xception.models.trained import open_weights
from xception.models.weights import save_weights
from xception.train import TrainConfig, fit
from xception.train.checkpoint import load_checkpoint
from xception.train.finetune import head_parameters

SMALL = {"width": 0.125, "middle_repeats": 1}


def starting_file(tmp_path: Path, *, num_classes: int = 4) -> Path:
    return starting_weights(tmp_path / "start.safetensors", num_classes=num_classes)


def config(tmp_path: Path, start: Path, **recipe) -> TrainConfig:
    from xception.data import DataConfig

    return TrainConfig(data=DataConfig(source="fashion_mnist", path=None, image_size=16, in_channels=1),
                       model="xception_small", model_overrides=SMALL, init_weights=str(start), recipe="finetune",
                       recipe_overrides=recipe, steps=6, batch_size=8, precision="fp32", channels_last=False,
                       compile=False, device="cpu", num_workers=0, progress=False, trackers=(),
                       out_dir=str(tmp_path / "run"))


def test_linear_probe_keeps_every_trunk_tensor_and_buffer_bit_equal(tmp_path):
    start = starting_file(tmp_path)
    result = fit(config(tmp_path, start, head_epochs=1e9, batchnorm="train", lr=0.05), datasets=tiny_datasets())
    before, after = load_file(start), load_file(result.run_dir / "weights.safetensors")
    trunk = [k for k in before if not k.startswith("classifier.")]
    assert len(trunk) > 50 and all(torch.equal(before[k], after[k]) for k in trunk)  # buffers included
    assert after["classifier.weight"].shape == (3, before["classifier.weight"].shape[1])  # 4 classes -> 3
    # The head trained: it moved away from its fresh initialisation (identical seeds give the same one).
    torch.manual_seed(0)
    fresh = create_model("xception_small", num_classes=3, in_channels=1, **SMALL)
    assert not torch.equal(after["classifier.weight"], fresh.state_dict()["classifier.weight"])
    # The optimizer holds state for the head's two tensors only.
    state = load_checkpoint(result.run_dir / "checkpoints" / "latest.pt")["optimizer"]["state"]
    assert len(state) == 2
    init = json.loads((result.run_dir / "config.json").read_text())["init"]
    assert init["loaded"] == len(before) - 2 and init["fresh"] == ["classifier.weight", "classifier.bias"]
    assert init["reason"] == "the file has 4 classes, the data 3" and len(init["sha256"]) == 64


@pytest.mark.parametrize("batchnorm, changes", [("frozen", False), ("train", True)])
def test_batchnorm_frozen_keeps_the_logits_at_learning_rate_zero(tmp_path, batchnorm, changes):
    start = starting_file(tmp_path, num_classes=3)  # the head loads too: the whole network is the file's
    result = fit(config(tmp_path, start, head_epochs=0.0, batchnorm=batchnorm, lr=0.0, label_smoothing=0.0),
                 datasets=tiny_datasets())
    images = tiny_datasets().val.tensors[0]
    logits = []
    for path in (start, result.run_dir / "weights.safetensors"):
        model = create_model("xception_small", num_classes=3, in_channels=1, weights=path, **SMALL).eval()
        with torch.no_grad():
            logits.append(model(images))
    assert torch.equal(logits[0], logits[1]) != changes


def test_trunk_learning_rate_ramps_after_the_head_phase(tmp_path):
    from xception.train.finetune import Phases
    from xception.train.recipes import get_recipe

    model = create_model("xception_small", num_classes=3, in_channels=1, **SMALL)
    phases = Phases(model, get_recipe("finetune", head_epochs=2.0, trunk_warmup_epochs=1.0, trunk_lr_scale=0.1),
                    epoch_size=100)
    assert phases.lr_scale(199) == 0.0 and not phases.trunk_trains(199)
    assert phases.lr_scale(249) == pytest.approx(0.05) and phases.lr_scale(400) == pytest.approx(0.1)
    head = head_parameters(model)
    assert head == {model.classifier.weight, model.classifier.bias}
    assert all(not p.requires_grad for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)
               for p in m.parameters())  # the finetune recipe freezes BatchNorm


def test_resume_refuses_another_starting_point(tmp_path, capsys):
    from xception.cli import main

    folder = write_image_folder(tmp_path / "data", per_class={"train": 8, "val": 4})
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    first, second = starting_file(tmp_path / "a"), starting_file(tmp_path / "b", num_classes=2)
    args = [*train_argv(folder, tmp_path / "run", "--set", "model.width=0.125", "--set", "model.middle_repeats=1"),
            "--recipe", "finetune", "--set", "stop_after_steps=2"]
    assert main([*args, "--weights", str(first)]) == 0
    capsys.readouterr()
    assert main([*args, "--weights", str(second)]) == 2
    assert "init_weights" in capsys.readouterr().err


@pytest.fixture
def keras_folder(tmp_path) -> Path:
    """Three classes of 3-channel photos (flat colours with noise) in one split per folder."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", 4), ("val", 2)):
        for name, colour in (("red", (200, 40, 40)), ("green", (40, 200, 40)), ("blue", (40, 40, 200))):
            (tmp_path / "photos" / split / name).mkdir(parents=True)
            for i in range(count):
                pixels = (np.array(colour) + rng.normal(0, 20, (80, 80, 3))).clip(0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(tmp_path / "photos" / split / name / f"{i}.png")
    return tmp_path / "photos"


@pytest.mark.slow
def test_finetune_from_the_official_keras_h5_on_a_three_class_folder(official_xception, keras_folder, tmp_path,
                                                                      capsys):
    from xception.cli import main

    h5_path, _ = official_xception
    out = tmp_path / "run"
    assert main(["train", "--model", "xception", "--weights", str(h5_path), "--recipe", "finetune", "--data",
                 str(keras_folder), "--image-size", "71", "--steps", "2", "--batch-size", "3", "--freeze-epochs",
                 "100", "--device", "cpu", "--precision", "fp32", "--workers", "0", "--no-progress",
                 "--set", "trackers=[]", "--out", str(out)]) == 0
    weights = load_file(out / "weights.safetensors")
    assert weights["classifier.weight"].shape == (3, 2048)
    with h5py.File(h5_path) as f:  # the file's own tensors, read without this project's reader
        stem = np.asarray(f["block1_conv1"]["block1_conv1"]["kernel:0"])  # (kh, kw, in, out)
        pointwise = np.asarray(f["block14_sepconv2"]["block14_sepconv2"]["pointwise_kernel:0"])
        moving_var = np.asarray(f["block14_sepconv2_bn"]["block14_sepconv2_bn"]["moving_variance:0"])
    assert np.array_equal(weights["stem.conv1.weight"].numpy(), stem.transpose(3, 2, 0, 1))
    assert np.array_equal(weights["exit_flow.block14.main.sepconv2.pointwise.weight"].numpy(),
                          pointwise.transpose(3, 2, 0, 1))
    assert np.array_equal(weights["exit_flow.block14.main.bn2.running_var"].numpy(), moving_var)
    capsys.readouterr()
    photo = next((keras_folder / "val" / "green").iterdir())
    assert main(["predict", str(photo), "--weights", str(out / "weights.safetensors"), "--runtime", "torch",
                 "--precision", "fp32"]) == 0
    printed = capsys.readouterr().out.split()
    assert {"red", "green", "blue"} <= set(printed)


@pytest.mark.slow
def test_deeplab_starts_its_backbone_from_classification_weights(tmp_path, fashion_mnist):
    from xception.data import DataConfig

    torch.manual_seed(3)
    classifier = create_model("xception_small", num_classes=10, in_channels=1)
    start = save_weights(classifier.eval(), tmp_path / "demo.safetensors")
    data = DataConfig(source="mosaic_masks", path=str(fashion_mnist), image_size=56, in_channels=1,
                      mosaic_train_size=8, mosaic_val_size=4)
    result = fit(TrainConfig(data=data, model="deeplabv3plus_small", init_weights=str(start), steps=1,
                             batch_size=4, recipe_overrides={"lr": 0.0, "head_epochs": 1e9}, num_workers=0,
                             progress=False, trackers=(), out_dir=str(tmp_path / "seg")))
    after, before = load_file(result.weights), load_file(start)
    backbone = {k.removeprefix("backbone.model."): v for k, v in after.items() if k.startswith("backbone.model.")}
    assert set(backbone) == {k for k in before if not k.startswith("classifier.")}
    assert all(torch.equal(backbone[k], before[k]) for k in backbone)
    init = json.loads((result.run_dir / "config.json").read_text())["init"]
    assert init["into"] == "backbone" and all(not k.startswith("backbone.") for k in init["fresh"])


def test_finetune_one_folder_split_by_val_split_then_predict_names_its_classes(tmp_path, capsys):
    """A user's folder of class folders, no train/ and val/: --val-split cuts it, split.json records
    the cut, and predict on the result prints the folder's class names."""
    from xception.cli import main

    folder = write_image_folder(tmp_path / "data", per_class={"all": 10}) / "all"
    start = starting_weights(tmp_path / "start.safetensors", num_classes=5)
    out = tmp_path / "run"
    args = [*train_argv(folder, out), "--weights", str(start), "--recipe", "finetune", "--val-split", "0.2",
            "--resize", "squash", "--sampler", "balanced", "--class-weighting", "inverse_frequency"]
    assert main(args) == 0
    split = json.loads((out / "split.json").read_text())
    assert len(split["train"]) == 16 and len(split["val"]) == 4 and not set(split["train"]) & set(split["val"])
    assert sum(path.startswith("dark/") for path in split["val"]) == 2  # stratified: 2 of each class
    capsys.readouterr()
    assert main(["predict", str(folder / "light" / "0.png"), "--weights", str(out / "weights.safetensors"),
                 "--runtime", "torch", "--precision", "fp32", "--top-k", "2"]) == 0
    printed = capsys.readouterr().out.split()
    assert {"dark", "light"} <= set(printed)
    _, _, description = open_weights(out / "weights.safetensors")
    assert description.preprocessing.resize == "squash" and description.provenance["init"]["weights"] == str(start)


def test_eval_scores_a_binary_model_per_image_and_per_group_as_scikit_learn(tmp_path, capsys):
    """ROC-AUC per image and per group (the mean probability of a group's images), against
    scikit-learn on probabilities computed here image by image."""
    import re

    from sklearn.metrics import roc_auc_score

    from xception.cli import main
    from xception.data.images import load_image
    from xception.data.prediction import prediction_transform

    folder = write_image_folder(tmp_path / "data", per_class={"train": 8, "val": 12})
    assert main([*train_argv(folder, tmp_path / "run"), "--steps", "2"]) == 0
    weights = tmp_path / "run" / "weights.safetensors"
    capsys.readouterr()
    pattern = r"([a-z]+/[0-9])[0-9]*\.png$"  # 0.png; 1.png, 10.png, 11.png; ...: groups of 1 to 3 images
    assert main(["eval", "--weights", str(weights), "--json", "--runtime", "torch", "--precision", "fp32",
                 "--group-pattern", pattern]) == 0
    report = json.loads(capsys.readouterr().out)
    model, _, description = open_weights(weights)
    prepare = prediction_transform(description.preprocessing, in_channels=1)
    paths = sorted((folder / "val").glob("*/*.png"))
    with torch.no_grad():
        probabilities = [float(model(prepare(load_image(p, in_channels=1))[None]).softmax(1)[0, 1]) for p in paths]
    labels = [int(p.parent.name == "light") for p in paths]
    assert report["roc_auc"] == pytest.approx(roc_auc_score(labels, probabilities), abs=1e-6)
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(paths):
        groups.setdefault(re.search(pattern, str(p)).group(1), []).append(i)
    group_scores = [np.mean([probabilities[i] for i in members]) for members in groups.values()]
    group_labels = [labels[members[0]] for members in groups.values()]
    assert report["binary"]["group"]["count"] == len(groups) == 20
    assert report["binary"]["group"]["roc_auc"] == pytest.approx(roc_auc_score(group_labels, group_scores), abs=1e-6)


def test_mixup_and_cutmix_give_mixed_images_and_soft_targets():
    from xception.train.mix import build_mix
    from xception.train.recipes import get_recipe

    assert build_mix(get_recipe("finetune"), num_classes=3, task="classification", multilabel=False) is None
    mix = build_mix(get_recipe("finetune", mixup_alpha=0.4), num_classes=3, task="classification", multilabel=False)
    torch.manual_seed(0)
    images, labels = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
    mixed, targets = mix(images, labels)
    lam = float(targets[1, 1])  # image 1 (class 1) mixed with image 0 (class 0): lambda on class 1
    assert targets.shape == (4, 3) and torch.allclose(targets.sum(1), torch.ones(4))
    assert torch.allclose(mixed[1], lam * images[1] + (1 - lam) * images[0], atol=1e-6)
    with pytest.raises(ValueError, match="single-label classification"):
        build_mix(get_recipe("finetune", cutmix_alpha=1.0), num_classes=3, task="segmentation", multilabel=False)
