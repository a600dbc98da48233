"""The learning-rate schedules against the paper's formulas (sections 4.2 and 4.3) at known steps."""

import math

import pytest
import torch
from torch import nn

from xception.train.optimizer import build_optimizer
from xception.train.recipes import get_recipe
from xception.train.schedule import build_schedule


@pytest.mark.parametrize("step", [0, 1, 19, 20, 21, 39, 40, 199, 200, 1000])
def test_schedule_paper_imagenet_is_094_every_two_epochs(step):
    # 1,000 images per epoch, batch 50: 20 steps per epoch, so the rate drops at steps 40, 80, ...
    schedule = build_schedule(get_recipe("paper_imagenet"), batch_size=50, epoch_size=1000, total_samples=1e9)
    epoch = step * 50 / 1000
    assert schedule(step * 50) == pytest.approx(0.045 * 0.94 ** math.floor(epoch / 2), rel=1e-12)


def test_schedule_paper_imagenet_known_values():
    schedule = build_schedule(get_recipe("paper_imagenet"), batch_size=32, epoch_size=1_281_167, total_samples=1e12)
    assert schedule(2 * 1_281_167 - 1) == 0.045
    assert schedule(2 * 1_281_167) == pytest.approx(0.0423)  # 0.045 x 0.94
    assert schedule(100 * 1_281_167) == pytest.approx(0.045 * 0.94**50)  # after 100 epochs
    assert schedule(100 * 1_281_167) == pytest.approx(0.00203988, rel=1e-5)  # by hand: e^(50 ln 0.94) = 0.045330


@pytest.mark.parametrize(("samples", "lr"), [(0, 1e-3), (2_999_999, 1e-3), (3_000_000, 9e-4),
                                             (6_000_000, 8.1e-4), (30_000_000, 1e-3 * 0.9**10)])
def test_schedule_paper_jft_is_09_every_3m_samples(samples, lr):
    schedule = build_schedule(get_recipe("paper_jft"), batch_size=32, epoch_size=100, total_samples=1e12)
    assert schedule(samples) == pytest.approx(lr, rel=1e-12)


def test_schedule_linear_scaling_and_warmup():
    recipe = get_recipe("paper_imagenet", reference_batch_size=256, warmup_epochs=1)
    schedule = build_schedule(recipe, batch_size=512, epoch_size=1000, total_samples=1e9)
    assert schedule.peak_lr == pytest.approx(0.09)
    assert schedule(250) == pytest.approx(0.09 * 0.25)  # a quarter through the warm-up epoch
    assert schedule(1000) == pytest.approx(0.09)


def test_schedule_cosine_ends_at_floor():
    recipe = get_recipe("fashion_mnist_demo", warmup_epochs=0.0, min_lr_ratio=0.1)
    schedule = build_schedule(recipe, batch_size=128, epoch_size=1000, total_samples=5000)
    assert schedule(0) == pytest.approx(0.1)
    assert schedule(2500) == pytest.approx(0.01 + 0.09 * 0.5)
    assert schedule(5000) == pytest.approx(0.01)


def test_recipe_weight_decay_depends_on_model_family():
    recipe = get_recipe("paper_imagenet")
    assert recipe.weight_decay_for("xception") == 1e-5
    assert recipe.weight_decay_for("inception_v3") == 4e-5
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    groups = build_optimizer(model, recipe=recipe, model_name="inception_v3", lr=0.1).param_groups
    decays = {tuple(p.shape): g["weight_decay"] for g in groups for p in g["params"]}
    assert decays == {(4, 3, 3, 3): 4e-5, (4,): 0.0}  # the kernel decays; BN gamma/beta and bias do not


def test_recipe_unknown_field_lists_valid_ones():
    with pytest.raises(TypeError, match="unknown recipe field.*valid:.*lr"):
        get_recipe("paper_jft", learning_rate=1.0)
    with pytest.raises(KeyError, match="valid: fashion_mnist_demo"):
        get_recipe("imagenet")


def test_optimizer_rmsprop_matches_recipe():
    model = nn.Linear(2, 2)
    optimizer = build_optimizer(model, recipe=get_recipe("paper_jft"), model_name="xception", lr=1e-3)
    assert isinstance(optimizer, torch.optim.RMSprop)
    assert optimizer.defaults["momentum"] == 0.9 and optimizer.defaults["alpha"] == 0.9
