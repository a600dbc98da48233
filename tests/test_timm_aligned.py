"""The aligned Xception family against timm's `xception_aligned.py`: timm's random weights load,
the outputs agree, the parameter counts and feature maps are timm's, at every output stride."""

import pytest
import torch
from torch import nn

from xception.models import create_model
from xception.models.complexity import count_parameters

timm = pytest.importorskip("timm")

ALIGNED = ["xception41", "xception65", "xception71", "xception41p", "xception65p"]
# timm 1.0's parameter counts with 1000 classes (timm.create_model(name).parameters()).
PARAMS = {
    "xception41": 26_969_560,
    "xception65": 39_916_312,
    "xception71": 42_338_736,
    "xception41p": 26_907_752,
    "xception65p": 39_819_560,
}
SIZE = 96  # even sizes: where symmetric ("fixed") and TF "same" stride-2 padding would differ


def relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours.double() - reference.double()).norm() / reference.double().norm())


def _timm_model(name: str, **kwargs) -> nn.Module:
    """timm's model with random weights, random BN affine and statistics from a calibration batch."""
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=50, **kwargs)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            nn.init.uniform_(module.weight, 0.5, 1.5)
            nn.init.uniform_(module.bias, -0.5, 0.5)
            module.momentum = None  # cumulative average: one batch sets the statistics exactly
    with torch.no_grad():
        model.train()(torch.rand(2, 3, SIZE, SIZE) * 2 - 1)
    return model.eval()


def _ours_from(model: nn.Module, name: str, tmp_path, **overrides) -> nn.Module:
    path = tmp_path / f"{name}.pth"
    torch.save(model.state_dict(), path)
    return create_model(name, num_classes=50, weights=path, **overrides).eval()


@pytest.mark.parametrize("name", ALIGNED)
def test_parameter_count_is_timms(name):
    with torch.device("meta"):
        model = create_model(name)
    assert count_parameters(model) == PARAMS[name]


@pytest.mark.slow
@pytest.mark.parametrize("name", ALIGNED)
def test_timm_weights_give_timms_logits(name, tmp_path):
    theirs = _timm_model(name)
    ours = _ours_from(theirs, name, tmp_path)
    x = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        assert relative_error(ours(x), theirs(x)) < 1e-5
        assert relative_error(ours.forward_features(x), theirs.forward_features(x)) < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("name, output_stride", [("xception41", 16), ("xception65p", 8)])
def test_output_stride_matches_timms_atrous_network(name, output_stride, tmp_path):
    # timm's own implementation of DeepLab's rule: the same weights give the same dilated network.
    theirs = _timm_model(name, output_stride=output_stride)
    ours = _ours_from(theirs, name, tmp_path, output_stride=output_stride)
    x = torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        ours_maps, theirs_maps = ours.forward_intermediates(x), theirs.forward_intermediates(x, intermediates_only=True)
    assert [m.shape for m in ours_maps[:-1]] == [m.shape for m in theirs_maps[:-1]]
    for a, b in zip(ours_maps[:-1], theirs_maps[:-1], strict=True):
        assert relative_error(a, b) < 1e-5
    with torch.no_grad():
        assert relative_error(ours.forward_features(x), theirs.forward_features(x)) < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("name", ALIGNED)
@pytest.mark.parametrize("output_stride", [32, 16, 8])
def test_feature_maps_and_info_are_timms(name, output_stride):
    with torch.device("meta"):
        ours = create_model(name, features_only=True, output_stride=output_stride)
        theirs = timm.create_model(name, features_only=True, output_stride=output_stride)
        x = torch.zeros(1, 3, 513, 513)
        ours_maps, theirs_maps = ours(x), theirs(x)
    assert ours.feature_info.channels() == theirs.feature_info.channels()
    assert ours.feature_info.reduction() == theirs.feature_info.reduction()
    assert [m.shape for m in ours_maps] == [m.shape for m in theirs_maps]


def test_deeplab_stem_gives_33_pixels_at_513_and_output_stride_16():
    # DeepLab's "same" stem: 513 -> 257, then 129, 65, 33 (the paper's "valid" one gives 32).
    with torch.device("meta"):
        model = create_model("xception65", features_only=True, out_indices=(-1,), output_stride=16)
        (last,) = model(torch.zeros(1, 3, 513, 513))
    assert tuple(last.shape[-2:]) == (33, 33)


def test_legacy_weights_do_not_load_into_the_aligned_family(tmp_path):
    path = tmp_path / "legacy.pth"
    torch.save(timm.create_model("legacy_xception", num_classes=50).state_dict(), path)
    with pytest.raises(ValueError, match="another architecture"):
        create_model("xception41", num_classes=50, weights=path)
