"""`output_stride` 8 / 16 / 32: DeepLab's atrous rule on the paper's Xception and its variants.

Shapes are checked on the meta device (no arithmetic), so 513 px costs nothing. Stride 32 is
pinned to the network as it was before output strides existed (commit 4254bdc of main).
"""

import hashlib
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from xception.models import MODELS, SamePadMaxPool2d, SeparableConv2d, Xception, create_model
from xception.models.xception import XceptionConfig, atrous_placements

# sha256 of str(create_model(name, num_classes=10)) on main at 4254bdc, before this feature: the
# printed module tree has every kernel, stride, padding and dilation, so equal hashes mean the same
# operations in the same order (the outputs were also compared bit for bit in-process then).
PAPER_NETWORKS = {
    "xception": "c7196fe96e5d0add013120dd80318e1b012e1292ec266529bc417c59957044d9",
    "xception_fc": "a565b2deb421fbf95dd388b9c40c0ab2a9901fe5c6d5c1c01fa6a12e74233c62",
    "xception_mid_elu": "0e4fe5e032932da34416deef60aa93f3dfc0ee16b0090cc5044f49ed2310196c",
    "xception_mid_relu": "c616b11e166af63719cf53b6b4e82f5b958f1aea9f7ec580f808e3d6b7f1db02",
    "xception_no_residual": "bb1f82c4ce2eb32999622134e1fce337809d4dace5f909318d51357493aadd53",
    "xception_small": "bdf398fa6fe5fbcd98f8c996883944f53e1145fea4bea87c114b1dc6c32457d9",
}


def _shapes(name: str, size: int, **overrides) -> list[tuple[int, int]]:
    with torch.device("meta"):
        model = create_model(name, num_classes=10, **overrides)
        features = model.forward_intermediates(torch.zeros(1, 3, size, size))
    return [tuple(f.shape[-2:]) for f in features]


@pytest.mark.parametrize("name", sorted(PAPER_NETWORKS))
def test_output_stride_32_is_the_network_before_output_strides(name):
    model = create_model(name, num_classes=10, output_stride=32)
    assert hashlib.sha256(str(model).encode()).hexdigest() == PAPER_NETWORKS[name]


def test_output_stride_32_logits_match_the_values_pinned_before_output_strides():
    # Seeded initialisation, printed on main at 4254bdc: [0.028889, 0.001659, -0.004379, ...].
    torch.manual_seed(0)
    model = create_model("xception_small", num_classes=10, output_stride=32).eval()
    x = torch.randn(2, 3, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model(x).flatten()[:6]
    expected = torch.tensor([0.028889, 0.001659, -0.004379, 0.014766, -0.002352, -0.00578])
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "size, output_stride, expected",
    [
        # "valid" stem: 299 -> 149 -> 147, then TF "same" pools: ceil(h / 2).
        (299, 32, [(147, 147), (74, 74), (37, 37), (19, 19), (10, 10)]),
        (299, 16, [(147, 147), (74, 74), (37, 37), (19, 19), (19, 19)]),
        (299, 8, [(147, 147), (74, 74), (37, 37), (37, 37), (37, 37)]),
        # 513 -> 256 -> 254 -> 127 -> 64 -> 32 (DeepLab's "same" stem gives 33 at stride 16)
        (513, 16, [(254, 254), (127, 127), (64, 64), (32, 32), (32, 32)]),
        (513, 8, [(254, 254), (127, 127), (64, 64), (64, 64), (64, 64)]),
    ],
)
def test_paper_xception_feature_sizes_follow_its_valid_stem(size, output_stride, expected):
    assert _shapes("xception", size, output_stride=output_stride) == expected


@pytest.mark.parametrize("output_stride, reductions", [(32, [2, 4, 8, 16, 32]), (16, [2, 4, 8, 16, 16]), (8, [2, 4, 8, 8, 8])])
def test_feature_info_reductions_are_true_at_every_output_stride(output_stride, reductions):
    with torch.device("meta"):
        model = create_model("xception", num_classes=10, output_stride=output_stride)
        features = model.forward_intermediates(torch.zeros(1, 3, 512, 512))
    assert [info["reduction"] for info in model.feature_info] == reductions
    for feature, info in zip(features, model.feature_info, strict=True):
        assert feature.shape[1] == info["num_chs"]
    infos = list(zip(features, model.feature_info, strict=True))
    for (a, info_a), (b, info_b) in zip(infos, infos[1:], strict=False):
        halvings = int(math.log2(info_b["reduction"] // info_a["reduction"]))
        expected = a.shape[-1]
        for _ in range(halvings):
            expected = math.ceil(expected / 2)
        assert b.shape[-1] == expected


def test_atrous_rule_strides_then_dilates_as_deeplab():
    # Paper's network at output stride 8: block2, block3 downsample; block4 runs at stride 1 and
    # rate 1; the middle flow and block13 at rate 2 (block13's pool at stride 1); block14 at rate 4.
    placements = atrous_placements(XceptionConfig(output_stride=8))
    assert [(p.stride, p.dilation) for p in placements] == [(2, 1), (2, 1), (1, 1)] + [(1, 2)] * 9 + [(1, 4)]
    assert [p.stride for p in atrous_placements(XceptionConfig())] == [2, 2, 2] + [1] * 8 + [2, 1]


def test_output_stride_16_dilates_the_exit_flow_and_keeps_every_tensor():
    paper = create_model("xception", num_classes=10)
    model = create_model("xception", num_classes=10, output_stride=16)
    block13, block14 = model.exit_flow.block13, model.exit_flow.block14
    assert (block13.main.pool.stride, block13.main.pool.dilation) == (1, 1)
    assert block13.shortcut.conv.stride == (1, 1)
    assert block13.main.sepconv2.depthwise.dilation == (1, 1)
    assert {m.depthwise.dilation for m in block14.modules() if isinstance(m, SeparableConv2d)} == {(2, 2)}
    assert {m.depthwise.padding for m in block14.modules() if isinstance(m, SeparableConv2d)} == {(2, 2)}
    # Same tensors and shapes: stride-32 weights load into every output stride.
    assert {k: v.shape for k, v in paper.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}


def test_output_stride_rejects_other_values():
    with pytest.raises(TypeError, match="output_stride=4 is not one of 8, 16, 32"):
        create_model("xception", output_stride=4)


@pytest.mark.parametrize("dilation", [1, 2, 4])
@pytest.mark.parametrize("size", [9, 10])
def test_stride_1_pool_is_tensorflow_same_with_dilation(dilation, size):
    # TF "same" at stride 1: total padding dilation * (k - 1), smaller half first (here even: equal).
    x = torch.randn(2, 3, size, size + 3)
    total = dilation * 2
    padded = F.pad(x, (total // 2, total - total // 2) * 2, value=float("-inf"))
    expected = F.max_pool2d(padded, 3, 1, dilation=dilation)
    assert torch.equal(SamePadMaxPool2d(3, 1, dilation)(x), expected)


@pytest.mark.parametrize("dilation", [2, 4])
def test_dilated_separable_convolution_is_tensorflow_same(dilation):
    conv = SeparableConv2d(4, 6, dilation=dilation)
    x = torch.randn(1, 4, 11, 14)
    padded = F.pad(x, (dilation, dilation, dilation, dilation))  # TF "same": d * (k - 1) / 2 per side
    spatial = F.conv2d(padded, conv.depthwise.weight, dilation=dilation, groups=4)
    torch.testing.assert_close(conv(x), F.conv2d(spatial, conv.pointwise.weight))


def _receptive_field(model: nn.Module, size: int = 480) -> int:
    """Width of the input region with a non-zero gradient for the centre output pixel."""
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0), requires_grad=True)
    y = model.forward_features(x)
    y[0, :, y.shape[-2] // 2, y.shape[-1] // 2].sum().backward()
    columns = x.grad.abs().sum((0, 1, 2)).nonzero()
    return int(columns.max() - columns.min() + 1)


def _slim(output_stride: int) -> nn.Module:
    torch.manual_seed(0)
    return create_model(
        "xception", num_classes=0, width=0.25, middle_repeats=1, output_stride=output_stride
    ).eval()


def test_receptive_field_at_output_stride_16_is_as_wide_as_at_32():
    at_32 = _receptive_field(_slim(32))
    assert at_32 < 480  # not clipped by the image: the comparison means something
    assert _receptive_field(_slim(16)) >= at_32
    assert _receptive_field(_slim(8)) >= at_32


def test_receptive_field_measure_sees_a_missing_dilation():
    # The same stride-16 network with its last block undilated: narrower, so the test above can fail.
    model = _slim(16)
    for conv in model.exit_flow[-1].modules():
        if isinstance(conv, nn.Conv2d) and conv.dilation == (2, 2):
            conv.dilation, conv.padding = (1, 1), (1, 1)
    assert _receptive_field(model) < _receptive_field(_slim(32))


XCEPTIONS = [name for name, entry in MODELS.items() if entry.build is Xception]


@pytest.mark.parametrize("name", XCEPTIONS)
@pytest.mark.parametrize("output_stride", [16, 8])
def test_every_registered_xception_takes_an_output_stride(name, output_stride):
    size = 64 if MODELS[name].input_size < 64 else 129
    with torch.device("meta"):
        natural = create_model(name, num_classes=10)
        model = create_model(name, num_classes=10, output_stride=output_stride)
        x = torch.zeros(1, 3, size, size)
        natural_maps, maps = natural.forward_intermediates(x), model.forward_intermediates(x)
    reductions = [min(info["reduction"], output_stride) for info in natural.feature_info]
    assert [info["reduction"] for info in model.feature_info] == reductions
    # A map at a reduction both networks share has the same size; later ones keep the size at
    # the output stride.
    at_stride = {i["reduction"]: m.shape[-1] for i, m in zip(natural.feature_info, natural_maps, strict=True)}
    assert [m.shape[-1] for m in maps] == [at_stride[r] for r in reductions]
    assert [m.shape[1] for m in maps] == [m.shape[1] for m in natural_maps]
