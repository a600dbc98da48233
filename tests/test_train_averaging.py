"""Polyak averaging: TF's warm-up decay and the two BatchNorm-statistics policies, by hand."""

import pytest
import torch
from torch import nn

from xception.train.averaging import ModelAverage


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(18, 3))


def _step(model: nn.Module, shift: float) -> None:
    """Change every weight and the BN statistics (a training-mode forward on shifted data)."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(shift)
    model.train()(torch.randn(4, 1, 5, 5) + shift)


def test_average_decay_warms_up_like_tensorflow():
    average = ModelAverage(_model().eval(), decay=0.9999, bn_policy="average")
    expected = [min(0.9999, (1 + t) / (10 + t)) for t in range(3)]
    got = []
    for _ in range(3):
        got.append(average.current_decay())
        average.update(_model())
    assert got == pytest.approx(expected)  # 0.1, 0.1818..., 0.25
    assert int(average.num_updates) == 3


@pytest.mark.parametrize("policy", ["average", "copy"])
def test_average_weights_and_bn_statistics_follow_policy(policy):
    model = _model()
    average = ModelAverage(model, decay=0.5, bn_policy=policy)
    before = {k: v.clone() for k, v in average.module.state_dict().items()}
    _step(model, 1.0)
    decay = average.current_decay()  # 0.1 at the first update
    average.update(model)
    after, live = average.module.state_dict(), model.state_dict()
    for key, value in live.items():
        if key.endswith("num_batches_tracked"):
            assert torch.equal(after[key], value)
        elif key.endswith(("running_mean", "running_var")) and policy == "copy":
            assert torch.equal(after[key], value)
        else:  # weights always, BN statistics under "average": decay * old + (1 - decay) * live
            assert torch.allclose(after[key], decay * before[key] + (1 - decay) * value, atol=1e-6), key


def test_average_stays_in_eval_mode_and_out_of_autograd():
    average = ModelAverage(_model(), decay=0.99, bn_policy="average")
    average.train()
    assert not average.module.training and not average.module[1].training
    assert all(not p.requires_grad for p in average.parameters())


def test_average_rejects_bad_settings():
    with pytest.raises(ValueError, match="decay"):
        ModelAverage(_model(), decay=1.0, bn_policy="average")
    with pytest.raises(ValueError, match="BatchNorm policy"):
        ModelAverage(_model(), decay=0.9, bn_policy="recompute")
