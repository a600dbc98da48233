"""DeepLabV3+: its ASPP rates per output stride, the decoder's stride-4 input, output shapes, and
its backbones from the registry."""

import pytest
import torch

from xception.models import create_model
from xception.models.deeplab import ASPP


def _dilations(aspp: ASPP) -> list[int]:
    return [branch.sepconv.depthwise.dilation[0] for branch in aspp.atrous]


@pytest.mark.parametrize("output_stride, rates", [(16, [6, 12, 18]), (8, [12, 24, 36])])
def test_aspp_rates_are_deeplabs_for_the_output_stride(output_stride, rates):
    with torch.device("meta"):
        model = create_model("deeplabv3plus", num_classes=21, output_stride=output_stride)
    assert _dilations(model.aspp) == rates
    assert model.backbone.feature_info.reduction() == [4, output_stride]
    assert model.backbone.feature_info.channels() == [256, 2048]  # xception65's stride-4 tap, as DeepLab


@pytest.mark.parametrize("output_stride, size", [(16, 33), (8, 65)])
def test_deeplab_on_xception65_at_513_px(output_stride, size):
    with torch.device("meta"):
        model = create_model("deeplabv3plus", num_classes=21, output_stride=output_stride).eval()
        x = torch.zeros(1, 3, 513, 513)
        low, high = model.backbone(x)
        logits = model(x)
    assert tuple(high.shape[-2:]) == (size, size) and tuple(low.shape[-2:]) == (129, 129)
    assert logits.shape == (1, 21, 513, 513)


@pytest.mark.parametrize("backbone", ["xception", "xception41p", "xception_small"])
def test_any_xception_of_the_registry_is_a_backbone(backbone):
    model = create_model("deeplabv3plus_small", num_classes=5, in_channels=1, backbone=backbone).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 57, 61)).shape == (2, 5, 57, 61)


def test_backbone_without_output_stride_is_refused():
    with pytest.raises(ValueError, match="needs an Xception backbone"):
        create_model("deeplabv3plus_small", num_classes=3, backbone="inception_v3")


def test_segmentation_gradients_reach_the_backbone_with_checkpointing():
    torch.manual_seed(0)
    model = create_model("deeplabv3plus_small", num_classes=4, in_channels=1).train()
    model.set_grad_checkpointing()
    model(torch.randn(2, 1, 56, 56)).logsumexp(1).mean().backward()
    assert all(p.grad is not None for p in model.parameters())
