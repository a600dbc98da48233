"""Every registered model honours the one interface (parametrized over the registry)."""

import pytest
import torch

from xception.models import create_model, list_models
from xception.models.registry import MODELS

# The classification interface; the segmentation models have theirs in tests/test_deeplab.py.
CLASSIFIERS = [name for name in list_models() if MODELS[name].task == "classification"]


def _small_input(name: str, batch: int = 2) -> torch.Tensor:
    size = 75 if MODELS[name].input_size > 64 else MODELS[name].input_size
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))


@torch.no_grad()
def _calibrated(model: torch.nn.Module, x: torch.Tensor) -> torch.nn.Module:
    """BatchNorm running statistics set to the statistics of batch `x`, then eval mode."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average: one batch sets the statistics exactly
    model.train()(x)
    return model.eval()


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_forward_and_backward_with_50_classes(name):
    model = create_model(name, num_classes=50)
    out = model(_small_input(name))
    assert out.shape == (2, 50)
    out.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_features_at_five_strides(name):
    model = create_model(name, num_classes=50).eval()
    x = _small_input(name, batch=1)
    features = model.forward_intermediates(x)
    assert len(features) == len(model.feature_info) == 5
    for feature, info in zip(features, model.feature_info, strict=True):
        assert feature.shape[1] == info["num_chs"]
    reductions = [info["reduction"] for info in model.feature_info]
    assert reductions == sorted(reductions) and len(set(reductions)) == 5
    assert all(b == 2 * a for a, b in zip(reductions, reductions[1:], strict=False))
    assert model.forward_features(x).shape[1] == model.num_features


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_dropout_changes_train_outputs_only(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=50, drop_rate=0.5)
    features = torch.randn(4, model.num_features, 2, 2)
    model.eval()
    assert torch.equal(model.forward_head(features), model.forward_head(features))
    model.train()
    assert not torch.equal(model.forward_head(features), model.forward_head(features))
    no_drop = create_model(name, num_classes=50, drop_rate=0.0).train()
    assert torch.equal(no_drop.forward_head(features), no_drop.forward_head(features))


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_channels_last_gives_the_same_outputs(name):
    model = _calibrated(create_model(name, num_classes=50), _small_input(name, batch=4))
    x = _small_input(name)
    expected = model(x)
    # A fresh network with identity BN statistics maps every image to nearly the same logits;
    # calibrated statistics keep the images apart, so a layout bug cannot hide.
    assert (expected[0] - expected[1]).abs().max() > 1e-2 * expected.abs().max()
    model = model.to(memory_format=torch.channels_last)
    actual = model(x.to(memory_format=torch.channels_last))
    reference = model.to(memory_format=torch.contiguous_format).double()(x.double()).float()

    def error(y):
        return ((y - reference).norm() / reference.norm()).item()

    # Calibrated deep networks amplify fp32 rounding (1e-4 here without residuals), so the bar is
    # the contiguous layout's own error against float64: channels_last must be as accurate.
    assert error(actual) < max(3 * error(expected), 1e-5)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_reset_classifier_and_pre_logits(name):
    model = create_model(name, num_classes=50).eval()
    model.reset_classifier(7)
    x = _small_input(name, batch=1)
    assert model(x).shape == (1, 7)
    assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (1, model.head_hidden_size)
    model.reset_classifier(0)
    assert model(x).shape == (1, model.head_hidden_size)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_any_input_channels(name):
    model = create_model(name, num_classes=5, in_channels=1).eval()
    assert model(_small_input(name)[:, :1]).shape == (2, 5)


def test_unknown_model_lists_valid_names():
    with pytest.raises(KeyError, match="xception_no_residual"):
        create_model("xceptoin")


def test_invalid_override_lists_valid_fields():
    with pytest.raises(TypeError, match="segments"):
        create_model("xception", segmnts=4)


def test_model_family_follows_the_network_each_name_builds():
    from xception.models import InceptionV3
    from xception.models.registry import model_family

    for name in list_models():
        inception = isinstance(create_model(name, num_classes=10), InceptionV3)
        assert model_family(name) == ("inception_v3" if inception else "xception"), name
    with pytest.raises(KeyError, match="unknown model 'resnet50'"):
        model_family("resnet50")
