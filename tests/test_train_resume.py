"""Resume equivalence: N steps straight == K steps, stop, --resume, the rest (same weights, CPU)."""

import dataclasses

import pytest
import torch

from tiny_classification import tiny_datasets
from xception.data import DataConfig
from xception.train import TrainConfig, fit
from xception.train.checkpoint import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


def _config(out_dir, **changes) -> TrainConfig:
    return TrainConfig(
        data=DataConfig(source="fashion_mnist", path=None, image_size=16, in_channels=1),
        model="xception_small", model_overrides={"width": 0.125, "middle_repeats": 1},
        # dropout and Polyak averaging on, so that RNG and average state must be restored too
        recipe="fashion_mnist_demo", recipe_overrides={"drop_rate": 0.3},
        steps=7, batch_size=16, precision="fp32", channels_last=False, compile=False, device="cpu",
        num_workers=0, progress=False, tensorboard=False, out_dir=str(out_dir), **changes,
    )


def test_resume_mid_epoch_gives_the_same_weights_as_a_straight_run(tmp_path):
    straight = fit(_config(tmp_path / "straight"), datasets=tiny_datasets())
    # 64 training images / 16 = 4 steps per epoch: stopping at step 5 is mid-epoch 2.
    fit(_config(tmp_path / "split", stop_after_steps=5), datasets=tiny_datasets())
    assert load_checkpoint(tmp_path / "split")["progress"]["step"] == 5
    resumed = fit(_config(tmp_path / "split", resume=str(tmp_path / "split")), datasets=tiny_datasets())
    a, b = load_checkpoint(straight.checkpoint), load_checkpoint(resumed.checkpoint)
    assert resumed.steps == straight.steps == 7
    for part in ("model", "average"):
        for key, value in a[part].items():
            assert torch.equal(value, b[part][key]), f"{part}.{key}"
    assert resumed.metrics == straight.metrics
    assert [r.step for r in resumed.history] == [r.step for r in straight.history] == [4, 7]


def test_resume_refuses_a_different_recipe(tmp_path):
    fit(_config(tmp_path / "run", stop_after_steps=1), datasets=tiny_datasets())
    changed = dataclasses.replace(_config(tmp_path / "run", resume=str(tmp_path / "run")),
                                  recipe_overrides={"drop_rate": 0.0})
    with pytest.raises(ValueError, match="cannot resume: recipe_overrides differ"):
        fit(changed, datasets=tiny_datasets())
