"""Inception V3 against torchvision's implementation, FACTS.md's counts and hand-computed shapes."""

import dataclasses

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor

from xception.models import create_model
from xception.models.complexity import count_macs, count_parameters
from xception.models.inception_v3 import InceptionV3, InceptionV3Config
from xception.models.weights.torchvision_inception_v3 import convert_torchvision_inception_v3


def _torchvision_inception_v3(num_classes: int) -> nn.Module:
    """torchvision's Inception V3 with random weights and BatchNorm statistics far from the identity."""
    torch.manual_seed(0)
    model = torchvision.models.inception_v3(
        weights=None, aux_logits=False, init_weights=False, transform_input=False, num_classes=num_classes
    )
    # One training-mode pass with cumulative statistics sets every running mean and variance to
    # the batch's, so activations keep their scale through 94 convolutions; then perturb them.
    batchnorms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in batchnorms:
        bn.momentum = None
    with torch.no_grad():
        model.train()(torch.randn(4, 3, 75, 75))
        for bn in batchnorms:
            bn.running_mean.add_(0.1 * torch.randn_like(bn.running_mean) * bn.running_var.sqrt())
            bn.running_var.mul_(torch.empty_like(bn.running_var).uniform_(0.5, 2.0))
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.normal_(0.0, 0.1)
    return model.eval()


def _meta_model(name: str, **kwargs) -> nn.Module:
    """A registered model on the meta device: shapes and counts without allocating or computing."""
    with torch.device("meta"):
        return create_model(name, **kwargs).eval()


@pytest.fixture(scope="module")
def twins() -> tuple[nn.Module, InceptionV3]:
    """torchvision's Inception V3 and ours, holding the same weights, in eval mode (50 classes)."""
    reference = _torchvision_inception_v3(num_classes=50)
    ours = create_model("inception_v3", num_classes=50)
    ours.load_state_dict(convert_torchvision_inception_v3(reference.state_dict()), strict=True)
    return reference, ours.eval()


@pytest.mark.parametrize("size", [(299, 299), (107, 150)])
def test_inception_v3_logits_match_torchvision(twins, size):
    reference, ours = twins
    x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, actual = reference(x), ours(x)
    assert expected.std() > 0.1  # the comparison is not between two near-zero tensors
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


def test_inception_v3_intermediates_match_torchvision_and_szegedy_table(twins):
    reference, ours = twins
    nodes = ["Conv2d_2b_3x3", "Conv2d_4a_3x3", "Mixed_5d", "Mixed_6e", "Mixed_7c"]
    assert [info["module"] for info in ours.feature_info] == nodes
    x = torch.randn(1, 3, 299, 299, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = create_feature_extractor(reference, return_nodes=nodes)(x)
        actual = ours.forward_intermediates(x)
    # Table 1 of Szegedy et al. (2016) with TF-slim's grid sizes: 147, 71, 35, 17, 8.
    assert [tuple(f.shape[1:]) for f in actual] == [
        (64, 147, 147), (192, 71, 71), (288, 35, 35), (768, 17, 17), (2048, 8, 8)
    ]
    assert [info["reduction"] for info in ours.feature_info] == [2, 4, 8, 16, 32]
    for feature, node in zip(actual, nodes, strict=True):
        torch.testing.assert_close(feature, expected[node], rtol=1e-5, atol=1e-5)


def test_inception_v3_state_dict_is_torchvisions_in_order():
    reference = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    renamed = [k.replace("fc.", "classifier.", 1) if k.startswith("fc.") else k for k in reference.state_dict()]
    expected = [k for k in renamed if not k.startswith("AuxLogits.")]
    assert list(_meta_model("inception_v3").state_dict()) == expected


def test_inception_v3_parameter_count_in_torchvision_convention():
    # The paper's Table 3 says 23,626,728; no public configuration gives that (FACTS.md). Ours is
    # torchvision's / timm's convention: BatchNorm with gamma and beta, 1000 classes, no aux tower.
    model = _meta_model("inception_v3")
    assert count_parameters(model) == 23_834_568
    # Keras and TF-slim use BatchNorm without gamma (scale=False): 23,817,352.
    gammas = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert count_parameters(model) - gammas == 23_817_352


def test_inception_v3_macs_match_fvcore_figure():
    # FACTS.md: 5.73 GMACs at 299 px (fvcore, via timm).
    with torch.device("meta"):  # counting needs shapes only
        macs = count_macs(create_model("inception_v3"), 299)
    assert macs == pytest.approx(5.73e9, rel=0.01)


def test_inception_v3_batchnorm_uses_tensorflow_epsilon():
    eps = {m.eps for m in _meta_model("inception_v3").modules() if isinstance(m, nn.BatchNorm2d)}
    assert eps == {1e-3}


def test_inception_v3_min_input_size_is_torchvisions_75_px(twins):
    reference, model = twins
    assert model.min_input_size == 75
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 75, 75)).shape == (1, 50)
        reference(torch.zeros(1, 3, 75, 75))
        with pytest.raises(RuntimeError):
            reference(torch.zeros(1, 3, 74, 74))
        with pytest.raises(ValueError, match="75 px"):
            model(torch.zeros(1, 3, 74, 74))


def test_inception_v3_small_parameter_count_is_within_5_percent_of_xception_small():
    inception = count_parameters(create_model("inception_v3_small", num_classes=10, in_channels=1))
    xception = count_parameters(create_model("xception_small", num_classes=10, in_channels=1))
    assert (inception, xception) == (863_154, 837_410)
    assert abs(inception / xception - 1) < 0.05


def test_inception_v3_small_halves_a_28_px_image_four_times():
    model = create_model("inception_v3_small", num_classes=10, in_channels=1).eval()
    assert model.min_input_size == 1
    with torch.no_grad():
        features = model.forward_intermediates(torch.randn(1, 1, 28, 28))
    # stride-1 stem and ceil(H / 2) at each of the four stride-2 steps: 28, 14, 7, 4, 2.
    assert [f.shape[-1] for f in features] == [28, 14, 7, 4, 2]
    assert [info["reduction"] for info in model.feature_info] == [1, 2, 4, 8, 16]


def test_inception_v3_width_rounds_every_convolution_to_multiples_of_8():
    model = _meta_model("inception_v3_small", num_classes=10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 94
    assert all(conv.out_channels % 8 == 0 for conv in convs)
    assert model.num_features == 8 * round(320 * 0.19 / 8) + 4 * 8 * round(384 * 0.19 / 8) + 8 * round(192 * 0.19 / 8)


def test_inception_v3_stem_pool_switch_drops_both_stem_pools():
    with_pools = _meta_model("inception_v3", num_classes=10)
    without = _meta_model("inception_v3", num_classes=10, stem_pool=False)
    assert count_parameters(without) == count_parameters(with_pools)
    x = torch.zeros(1, 3, 75, 75, device="meta")
    # 75 -> 37 -> 35 -> 35 -> 33 -> Mixed_6a 16 -> Mixed_7a 7 (by hand, "valid" 3x3 steps).
    assert without.forward_features(x).shape[-2:] == (7, 7)
    assert with_pools.forward_features(x).shape[-2:] == (1, 1)
    assert [(i["module"], i["reduction"]) for i in without.feature_info] == [
        ("Mixed_5d", 2), ("Mixed_6e", 4), ("Mixed_7c", 8)
    ]
    assert without.min_input_size == 23  # 23 -> 11 -> 9 -> 9 -> 7 -> 3 -> 1


def test_inception_v3_same_padding_maps_h_to_ceil_h_over_32():
    model = _meta_model("inception_v3", num_classes=10, padding="same")
    assert count_parameters(model) == count_parameters(_meta_model("inception_v3", num_classes=10))
    features = model.forward_intermediates(torch.zeros(1, 3, 100, 90, device="meta"))
    assert [tuple(f.shape[-2:]) for f in features] == [(50, 45), (25, 23), (13, 12), (7, 6), (4, 3)]


def test_inception_v3_fc_layers_set_the_head_width():
    model = create_model("inception_v3_small", num_classes=10, fc_layers=(64, 32)).eval()
    assert model.head_hidden_size == 32
    features = model.forward_features(torch.zeros(3, 3, 28, 28))
    assert model.forward_head(features, pre_logits=True).shape == (3, 32)
    assert model(torch.zeros(3, 3, 28, 28)).shape == (3, 10)


def test_inception_v3_rejects_what_it_cannot_build():
    config = InceptionV3Config()
    with pytest.raises(ValueError, match="stem_stride"):
        InceptionV3(dataclasses.replace(config, stem_stride=3), num_classes=10, in_channels=3, drop_rate=0.0)
    with pytest.raises(ValueError, match="kind"):
        bad = dataclasses.replace(config, mixed=(dataclasses.replace(config.mixed[0], kind="Z"),))
        InceptionV3(bad, num_classes=10, in_channels=3, drop_rate=0.0)
    with pytest.raises(ValueError, match="in_channels"):
        create_model("inception_v3_small", in_channels=0)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        create_model("inception_v3_small")(torch.zeros(1, 1, 28, 28))
