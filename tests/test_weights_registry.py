"""The weights registry against its publishers: Keras' URLs and md5, timm's and torchvision's files,
preparations and metrics, the ImageNet classes, and each entry's parameter count against the model."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import torch
from PIL import Image
from skimage import data as photos

from xception import create_model
from xception.data.prediction import prediction_transform
from xception.imagenet_classes import IMAGENET_CATEGORIES, IMAGENET_WNIDS
from xception.models.weights.registry import (
    INCEPTION_V3_IMAGENET,
    WEIGHTS,
    XCEPTION_IMAGENET,
    XCEPTION_IMAGENET_NOTOP,
    XCEPTION_TIMM,
    default_weights,
    find_weights,
    list_weights,
)


@pytest.mark.parametrize("key", sorted(WEIGHTS))
def test_weights_entry_num_params_match_the_model(key):
    entry = WEIGHTS[key]
    with torch.device("meta"):
        model = create_model(entry.model_name, num_classes=entry.num_classes)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == entry.num_params
    assert len(entry.categories) == 1000


def test_keras_entries_have_keras_urls_and_published_md5():
    spec = importlib.util.find_spec("keras")  # read, not imported: importing Keras picks a backend
    if spec is None:
        pytest.skip("keras is not installed")
    source = (Path(spec.origin).parent / "src" / "applications" / "xception.py").read_text()
    hashes = re.findall(r'file_hash="([0-9a-f]{32})"', source)
    paths = ["".join(re.findall(r'"([^"]+)"', block))
             for block in re.findall(r"^WEIGHTS_PATH(?:_NO_TOP)? = \((.*?)\)", source, re.S | re.M)]
    assert [XCEPTION_IMAGENET.urls[0], XCEPTION_IMAGENET_NOTOP.urls[0]] == paths
    assert [XCEPTION_IMAGENET.checksum.digest, XCEPTION_IMAGENET_NOTOP.checksum.digest] == hashes
    assert {XCEPTION_IMAGENET.checksum.algorithm, XCEPTION_IMAGENET_NOTOP.checksum.algorithm} == {"md5"}
    for entry in (XCEPTION_IMAGENET, XCEPTION_IMAGENET_NOTOP):
        assert all(url.endswith("/" + entry.file_name) for url in entry.urls)


def test_torchvision_inception_v3_entry_matches_torchvision_weights():
    from torch.hub import HASH_REGEX
    from torchvision.models import Inception_V3_Weights, inception_v3

    published = Inception_V3_Weights.IMAGENET1K_V1
    assert INCEPTION_V3_IMAGENET.urls == (published.url,)
    assert INCEPTION_V3_IMAGENET.checksum.digest == HASH_REGEX.search(published.url).group(1)
    metrics = published.meta["_metrics"]["ImageNet-1K"]
    assert (100 * INCEPTION_V3_IMAGENET.metrics[0].top1, 100 * INCEPTION_V3_IMAGENET.metrics[0].top5) == pytest.approx(
        (metrics["acc@1"], metrics["acc@5"]))
    assert INCEPTION_V3_IMAGENET.categories == tuple(published.meta["categories"])
    with torch.device("meta"):
        reference = inception_v3(weights=None, aux_logits=True, init_weights=False)
    aux = sum(p.numel() for p in reference.AuxLogits.parameters())
    assert published.meta["num_params"] - aux == INCEPTION_V3_IMAGENET.num_params


def test_timm_entry_matches_timm_legacy_xception():
    timm = pytest.importorskip("timm")
    from torch.hub import HASH_REGEX

    cfg = timm.models.get_pretrained_cfg("legacy_xception.tf_in1k")
    assert XCEPTION_TIMM.urls == (cfg.url,)
    assert XCEPTION_TIMM.checksum.digest == HASH_REGEX.search(cfg.url).group(1)
    assert (XCEPTION_TIMM.preprocessing.crop_fraction, XCEPTION_TIMM.preprocessing.interpolation) == (
        cfg.crop_pct, cfg.interpolation)
    assert cfg.input_size == (3, 299, 299) and cfg.mean == cfg.std == (0.5, 0.5, 0.5)  # [-1, 1]


def test_xception_preparation_matches_timms_transform_on_a_photo():
    timm = pytest.importorskip("timm")
    from timm.data import create_transform, resolve_data_config

    photo = Image.fromarray(photos.astronaut())
    cfg = timm.models.get_pretrained_cfg("legacy_xception.tf_in1k").to_dict()
    theirs = create_transform(**resolve_data_config(pretrained_cfg=cfg))(photo)
    ours = prediction_transform(XCEPTION_IMAGENET.preprocessing, in_channels=3)(photo)
    assert ours.shape == theirs.shape == (3, 299, 299)
    # PIL's bicubic (timm) and torchvision's tensor bicubic differ by rounding, not by a pixel shift.
    assert (ours - theirs).abs().mean() < 0.01


def test_inception_v3_preparation_matches_torchvisions_transform_on_a_photo():
    from torchvision.models import Inception_V3_Weights

    photo = Image.fromarray(photos.astronaut())
    normalised = Inception_V3_Weights.IMAGENET1K_V1.transforms()(photo)
    mean, std = torch.tensor([0.485, 0.456, 0.406])[:, None, None], torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    theirs = (normalised * std + mean - 0.5) / 0.5  # what torchvision's transform_input makes of it
    ours = prediction_transform(INCEPTION_V3_IMAGENET.preprocessing, in_channels=3)(photo)
    assert ours.shape == theirs.shape == (3, 299, 299)
    # The same resize and crop; PIL (torchvision's pipeline) and tensor resizing round a few pixels apart.
    assert (ours - theirs).abs().max() <= 1 / 127.5 + 1e-6
    assert (ours - theirs).abs().mean() < 1e-3


def test_imagenet_classes_are_torchvisions_names_and_the_devkits_sorted_wnids():
    timm = pytest.importorskip("timm")
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    assert IMAGENET_CATEGORIES == tuple(_IMAGENET_CATEGORIES)
    synsets = (Path(timm.__file__).parent / "data" / "_info" / "imagenet_synsets.txt").read_text().split()
    assert IMAGENET_WNIDS == tuple(synsets) == tuple(sorted(synsets))
    assert (IMAGENET_WNIDS[0], IMAGENET_CATEGORIES[0]) == ("n01440764", "tench")


def test_registry_lookups():
    assert list_weights("xception") == ["xception.imagenet", "xception.imagenet_notop", "xception.timm"]
    assert find_weights("xception", "imagenet") is XCEPTION_IMAGENET
    assert find_weights("xception", "inception_v3.imagenet") is INCEPTION_V3_IMAGENET
    assert find_weights("xception", "imagenet_v2") is None
    assert default_weights("xception", 1000) is XCEPTION_IMAGENET
    assert default_weights("xception", 0) is XCEPTION_IMAGENET_NOTOP
    assert default_weights("xception", 10) is None
    assert "class_names" not in XCEPTION_IMAGENET_NOTOP.file_metadata()
