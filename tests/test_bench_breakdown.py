"""xception.bench.breakdown: operator categories, dense-convolution FLOPs, and a profiled step."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from xception.bench.breakdown import CATEGORIES, categorize, ceiling, dense_convolution_gflop, profile_step
from xception.bench.steps import make_step
from xception.models import create_model


@pytest.mark.parametrize(
    ("name", "shapes", "expected"),
    [
        ("aten::mkldnn_convolution", [[2, 8, 5, 5], [8, 1, 3, 3], [], [], []], "depthwise convolution"),
        ("aten::convolution_backward", [[2, 8, 5, 5], [2, 8, 5, 5], [8, 1, 3, 3]], "depthwise convolution"),
        ("aten::convolution_backward", [[2, 16, 5, 5], [2, 8, 5, 5], [16, 8, 1, 1]], "dense convolution"),
        ("aten::mkldnn_convolution", [[2, 1, 5, 5], [32, 1, 3, 3], [], [], []], "depthwise convolution"),
        ("aten::mkldnn_convolution", [[2, 3, 5, 5], [32, 3, 3, 3], [], [], []], "dense convolution"),
        ("aten::native_batch_norm_backward", [], "batch norm"),
        ("aten::threshold_backward", [], "activation"),
        ("aten::clamp_min_", [], "activation"),
        ("aten::max_pool2d_with_indices_backward", [], "pooling"),
        ("aten::_foreach_add_", [], "optimizer"),
        ("aten::add", [], "other"),
    ],
)
def test_categorize_hand_cases(name, shapes, expected):
    assert categorize(name, shapes) == expected


@pytest.mark.parametrize("name", ["xception_small", "inception_v3_small"])
def test_dense_convolution_flops_agree_with_torch_flop_counter(name):
    model = create_model(name, num_classes=10).eval()
    depthwise = 0

    def count_depthwise(module, _inputs, output):
        nonlocal depthwise
        if module.groups > 1:
            kh, kw = module.kernel_size
            depthwise += 2 * output.numel() * (module.in_channels // module.groups) * kh * kw

    handles = [m.register_forward_hook(count_depthwise) for m in model.modules() if isinstance(m, nn.Conv2d)]
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(2, 3, 32, 32))
    for handle in handles:
        handle.remove()
    torch_conv = counter.get_flop_counts()["Global"][torch.ops.aten.convolution]
    dense = dense_convolution_gflop(model, batch_size=2, image_size=32) * 1e9
    assert dense + depthwise == pytest.approx(torch_conv, rel=1e-9)
    assert (depthwise > 0) == (name == "xception_small")


def test_profiled_step_finds_depthwise_work_only_in_xception(one_thread):
    torch.manual_seed(0)
    shares = {}
    for name in ("xception_small", "inception_v3_small"):
        model = create_model(name, num_classes=10)
        step = make_step(model, training=True, batch_size=2, image_size=32, num_classes=10, precision="fp32",
                         channels_last=True, compile=False, device=torch.device("cpu"))
        breakdown = profile_step(step, repeats=1)
        assert breakdown["total"] == pytest.approx(sum(breakdown[c] for c in CATEGORIES))
        assert breakdown["dense convolution"] > 0 and breakdown["batch norm"] > 0
        shares[name] = breakdown["depthwise convolution"] / breakdown["total"]
    assert shares["xception_small"] > 0.01 and shares["inception_v3_small"] == 0.0


def test_ceiling_arithmetic():
    # A rival stepping in 2.0 s against a 1.25x bar allows 1.6 s; 100 GFLOP of dense convolutions
    # at the rival's 80 GFLOP/s take 1.25 s (0.25 s at a 400 GFLOP/s peak): 0.35 s (1.35 s) left.
    bound = ceiling(100.0, rival_step_s=2.0, bar=1.25, rival_dense_gflops=80.0, peak_gflops=400.0)
    assert bound.allowed_step_s == pytest.approx(1.6)
    assert bound.dense_at_rival_speed_s == pytest.approx(1.25)
    assert bound.dense_at_peak_s == pytest.approx(0.25)
