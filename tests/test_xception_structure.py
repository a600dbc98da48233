"""Xception's structure and parameter counts against Table 3, FACTS.md and first principles."""

import pytest
import torch
from torch import nn

from xception.models import SamePadMaxPool2d, SeparableConv2d, create_model
from xception.models.complexity import count_batchnorm_statistics, count_macs, count_parameters


def test_xception_parameter_count_matches_table3():
    model = create_model("xception")
    assert count_parameters(model) == 22_855_952
    assert count_batchnorm_statistics(model) == 54_528


def test_xception_without_top_parameter_count_matches_keras():
    assert count_parameters(create_model("xception", num_classes=0)) == 20_806_952


def test_xception_macs_match_fvcore_figure():
    # FACTS.md: 8.4 GMACs at 299 px (fvcore, via timm).
    assert count_macs(create_model("xception"), 299) == pytest.approx(8.4e9, rel=0.01)


def test_xception_has_36_convolutions_in_14_modules_plus_4_shortcuts():
    model = create_model("xception")
    separable = [m for m in model.modules() if isinstance(m, SeparableConv2d)]
    shortcuts = [n for n, m in model.named_modules() if n.endswith("shortcut.conv")]
    blocks = [n for n, _ in model.named_modules() if n.count(".") == 1 and ".block" in n]
    assert len(separable) == 34 and len(shortcuts) == 4
    assert len(blocks) + 1 == 14  # + the stem (block1)


def test_xception_batchnorm_uses_keras_epsilon():
    eps = {m.eps for m in create_model("xception").modules() if isinstance(m, nn.BatchNorm2d)}
    assert eps == {1e-3}


def test_xception_shapes_at_stage_boundaries():
    model = create_model("xception").eval()
    feats = model.forward_intermediates(torch.zeros(1, 3, 299, 299))
    assert [tuple(f.shape[1:]) for f in feats] == [
        (64, 147, 147), (128, 74, 74), (256, 37, 37), (728, 19, 19), (2048, 10, 10)
    ]
    assert [i["reduction"] for i in model.feature_info] == [2, 4, 8, 16, 32]


def test_no_residual_variant_has_no_residual_adds():
    model = create_model("xception_no_residual")
    blocks = [m for n, m in model.named_modules() if ".block" in n and n.count(".") == 1]
    assert blocks and not any(b.residual or b.shortcut is not None for b in blocks)
    # The four 1x1 shortcut convolutions and their BatchNorms are gone, nothing else.
    shortcut_params = sum(
        p.numel() for n, p in create_model("xception").named_parameters() if ".shortcut." in n
    )
    assert count_parameters(model) == 22_855_952 - shortcut_params


def test_no_residual_variant_output_ignores_the_identity_path():
    # With a residual, zeroing a middle block's last BN leaves the block as the identity;
    # without one, that block outputs zeros.
    for name, expect_identity in (("xception", True), ("xception_no_residual", False)):
        model = create_model(name, num_classes=0).eval()
        block = model.middle_flow.block5
        nn.init.zeros_(block.main.bn3.weight)
        nn.init.zeros_(block.main.bn3.bias)
        x = torch.randn(1, 728, 19, 19)
        out = block(x)
        assert torch.equal(out, x) == expect_identity
        assert (out.abs().sum() == 0) == (not expect_identity)


@pytest.mark.parametrize("activation, cls", [("relu", nn.ReLU), ("elu", nn.ELU)])
def test_mid_activation_sits_between_depthwise_and_pointwise(activation, cls):
    conv = SeparableConv2d(8, 16, mid_activation=activation)
    assert [type(m) for m in conv.children()] == [nn.Conv2d, cls, nn.Conv2d]
    x = torch.randn(2, 8, 9, 9)
    expected = conv.pointwise(cls()(conv.depthwise(x)))
    torch.testing.assert_close(conv(x), expected)
    # And it changes the function: without it the result is linear in x.
    assert not torch.allclose(conv(-x), -conv(x))


def test_mid_activation_variants_place_it_in_every_separable_conv():
    model = create_model("xception_mid_elu")
    separable = [m for m in model.modules() if isinstance(m, SeparableConv2d)]
    assert all(isinstance(m.mid, nn.ELU) for m in separable)
    assert all(isinstance(m.mid, nn.Identity) for m in create_model("xception").modules() if isinstance(m, SeparableConv2d))


@pytest.mark.parametrize("segments", [1, 2, 4, 8, None])
def test_segments_set_the_spatial_weights_to_9_c_c_over_segments(segments):
    c = 64
    conv = SeparableConv2d(c, 32, segments=segments)
    expected_segments = c if segments is None else segments
    assert conv.depthwise.weight.numel() == 9 * c * c // expected_segments
    assert conv.pointwise.weight.numel() == c * 32


def test_one_segment_is_a_dense_3x3_convolution_followed_by_1x1():
    conv = SeparableConv2d(8, 4, segments=1)
    x = torch.randn(1, 8, 7, 7)
    dense = nn.functional.conv2d(x, conv.depthwise.weight, padding=1)  # every output sees every input
    torch.testing.assert_close(conv(x), nn.functional.conv2d(dense, conv.pointwise.weight))
    assert conv.depthwise.groups == 1 and conv.depthwise.weight.shape == (8, 8, 3, 3)


def test_pointwise_first_order_is_figure4_extreme_inception():
    conv = SeparableConv2d(8, 16, order="pointwise_first")
    assert conv.pointwise.weight.shape == (16, 8, 1, 1)
    assert conv.depthwise.weight.shape == (16, 1, 3, 3)  # spatial on the 1x1's outputs
    x = torch.randn(1, 8, 5, 5)
    torch.testing.assert_close(conv(x), conv.depthwise(conv.pointwise(x)))


def test_segments_override_reaches_every_separable_conv():
    model = create_model("xception", segments=4)
    groups = {m.depthwise.groups for m in model.modules() if isinstance(m, SeparableConv2d)}
    assert groups == {4}


def test_invalid_segments_fail_with_the_rule():
    with pytest.raises(ValueError, match="must divide"):
        SeparableConv2d(10, 10, segments=3)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 74, 75])
def test_same_pad_max_pool_matches_tensorflow_padding(size):
    x = torch.randn(1, 2, size, size)
    out = SamePadMaxPool2d()(x)
    # TF "same": out = ceil(in / 2), total pad max((out-1)*2+3-in, 0), the smaller half first.
    n_out = -(-size // 2)
    total = max((n_out - 1) * 2 + 3 - size, 0)
    padded = nn.functional.pad(x, (total // 2, total - total // 2) * 2, value=float("-inf"))
    torch.testing.assert_close(out, nn.functional.max_pool2d(padded, 3, 2))


def test_same_pad_max_pool_differs_from_symmetric_padding_on_even_inputs():
    x = torch.randn(1, 4, 74, 74)
    symmetric = nn.functional.max_pool2d(x, 3, 2, padding=1)
    assert symmetric.shape == SamePadMaxPool2d()(x).shape
    assert not torch.equal(symmetric, SamePadMaxPool2d()(x))


def test_same_pad_max_pool_handles_mixed_parity():
    x = torch.randn(1, 1, 6, 7)
    out = SamePadMaxPool2d()(x)
    padded = nn.functional.pad(x, (1, 1, 0, 1), value=float("-inf"))
    torch.testing.assert_close(out, nn.functional.max_pool2d(padded, 3, 2))


def test_fc_head_has_two_4096_unit_layers():
    model = create_model("xception_fc", num_classes=50)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(2048, 4096), (4096, 4096), (4096, 50)]
    assert model.forward_head(torch.randn(2, 2048, 3, 3), pre_logits=True).shape == (2, 4096)


def test_small_width_rounds_channels_to_a_multiple_of_8():
    model = create_model("xception_small")
    widths = {m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)}
    assert all(w % 8 == 0 for w in widths)


def test_too_small_input_fails_with_the_minimum():
    with pytest.raises(ValueError, match="smaller than this network admits"):
        create_model("xception", num_classes=0)(torch.zeros(1, 3, 6, 6))
