"""The registered Xceptions as backbones: features_only / out_indices, feature_info, gradient
checkpointing and stochastic depth (timm's interface and semantics)."""

import pytest
import torch
from torch import nn

from xception.bench.memory import step_peak_memory
from xception.models import create_model

timm = pytest.importorskip("timm")


def test_features_only_returns_the_selected_maps_with_true_feature_info():
    backbone = create_model("xception_small", features_only=True, out_indices=(1, -1), in_channels=1).eval()
    features = backbone(torch.randn(2, 1, 56, 56))
    assert backbone.feature_info.reduction() == [2, 16]
    assert [f.shape[1] for f in features] == backbone.feature_info.channels()
    assert [f.shape[-1] for f in features] == [26, 4]  # the "valid" stem: 56 -> 54 -> 52, then ceil(h / 2)
    assert backbone.feature_info.module_name() == ["entry_flow.block2", "exit_flow.block9"]
    assert not any(name.startswith(("classifier", "fc_layers")) for name, _ in backbone.model.named_parameters())


@pytest.mark.parametrize("output_stride", [32, 16, 8])
def test_feature_info_matches_timm_legacy_xception_at_every_output_stride(output_stride):
    # timm's legacy_xception has no output stride: at 32 its feature_info is ours, below it ours
    # follows the aligned family's convention (the reductions the maps really have).
    with torch.device("meta"):
        ours = create_model("xception", features_only=True, output_stride=output_stride)
        maps = ours(torch.zeros(1, 3, 320, 320))
        theirs = timm.create_model("legacy_xception", features_only=True)
    assert ours.feature_info.channels() == theirs.feature_info.channels()
    assert ours.feature_info.reduction() == [min(r, output_stride) for r in theirs.feature_info.reduction()]
    assert [m.shape[-1] for m in maps] == [
        {2: 157, 4: 79, 8: 40, 16: 20, 32: 10}[r] for r in ours.feature_info.reduction()
    ]


def test_out_indices_need_features_only_and_a_valid_index():
    with pytest.raises(ValueError, match="features_only=True"):
        create_model("xception_small", out_indices=(1,))
    with pytest.raises(ValueError, match="has 5 feature maps"):
        create_model("xception_small", features_only=True, out_indices=(5,))


def _loss_and_grads(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad()
    torch.manual_seed(3)  # the same drop-path masks in both runs
    loss = model(x).square().mean()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_grad_checkpointing_gives_the_same_gradients_and_batchnorm_statistics():
    torch.manual_seed(0)
    plain = create_model("xception_small", num_classes=10, drop_path_rate=0.2).train()
    checkpointed = create_model("xception_small", num_classes=10, drop_path_rate=0.2).train()
    checkpointed.load_state_dict(plain.state_dict())
    checkpointed.set_grad_checkpointing()
    x = torch.randn(4, 3, 32, 32)
    loss, grads = _loss_and_grads(plain, x)
    loss_c, grads_c = _loss_and_grads(checkpointed, x)
    torch.testing.assert_close(loss_c, loss)
    for name, grad in grads.items():
        torch.testing.assert_close(grads_c[name], grad, rtol=1e-5, atol=1e-7, msg=name)
    # The backward pass recomputes every block, BatchNorm statistics are still updated once.
    for (name, a), b in zip(plain.named_buffers(), checkpointed.buffers(), strict=True):
        assert torch.equal(a, b), name


def test_grad_checkpointing_lowers_the_peak_memory_of_a_training_step():
    torch.manual_seed(0)
    model = create_model("xception", num_classes=10, width=0.25, middle_repeats=4).train()
    x = torch.randn(2, 3, 160, 160)

    def step() -> None:
        model(x).sum().backward()

    step()  # gradients allocated once, outside the measurement
    plain = step_peak_memory(step, torch.device("cpu"))
    model.set_grad_checkpointing()
    checkpointed = step_peak_memory(step, torch.device("cpu"))
    assert checkpointed < 0.6 * plain, (checkpointed, plain)


def test_drop_path_rates_grow_linearly_over_depth_as_timm():
    ours = create_model("xception", drop_path_rate=0.3)
    rates = [b.drop_path.drop_prob if b.drop_path is not None else None for _, b in ours.blocks()]
    assert rates[0] is None  # block2's rate is 0
    assert rates[-1] is None  # block14 has no residual branch
    assert rates[1:-1] == pytest.approx([0.3 * i / 12 for i in range(1, 12)])


def test_drop_path_changes_train_mode_outputs_only():
    torch.manual_seed(0)
    model = create_model("xception_small", num_classes=10, drop_path_rate=0.5)
    reference = create_model("xception_small", num_classes=10)
    reference.load_state_dict(model.state_dict())
    x = torch.randn(4, 3, 28, 28)
    model.eval(), reference.eval()
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))
        model.train(), reference.train()
        assert not torch.allclose(model(x), reference(x))
        assert not torch.allclose(model(x), model(x))
    assert sum(isinstance(m, nn.Dropout) and m.p > 0 for m in model.modules()) == 0
