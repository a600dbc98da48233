"""Resume: N steps straight == the same run stopped, killed and continued any number of times
(same weights, same metrics.jsonl); what a resume may change and what it refuses; a fresh start
is an explicit choice (CPU)."""

import dataclasses
import json
import os
import shutil

import pytest
import torch

from tiny_classification import tiny_datasets
from xception.data import DataConfig
from xception.train import TrainConfig, fit
from xception.train.checkpoint import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


def _config(out_dir, **changes) -> TrainConfig:
    config = TrainConfig(
        data=DataConfig(source="fashion_mnist", path=None, image_size=16, in_channels=1),
        model="xception_small", model_overrides={"width": 0.125, "middle_repeats": 1},
        # dropout and Polyak averaging on, so that RNG and average state must be restored too
        recipe="fashion_mnist_demo", recipe_overrides={"drop_rate": 0.3},
        steps=7, batch_size=16, precision="fp32", channels_last=False, compile=False, device="cpu",
        num_workers=0, progress=False, trackers=(), out_dir=str(out_dir), log_every_steps=1,
    )
    return dataclasses.replace(config, **changes)


def _rows(run_dir, kinds=("step", "eval")) -> list[dict]:
    """metrics.jsonl without the fields that measure time."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("wall_s", "images_per_s")} for r in rows if r["kind"] in kinds]


def test_resume_mid_epoch_gives_the_same_weights_and_metrics_as_a_straight_run(tmp_path):
    straight = fit(_config(tmp_path / "straight"), datasets=tiny_datasets())
    split = tmp_path / "split"
    # 64 training images / 16 = 4 steps per epoch: stopping at step 3 and 5 is mid-epoch.
    fit(_config(split, stop_after_steps=3), datasets=tiny_datasets())
    kept = split / "kept-at-3.pt"
    shutil.copy(split / "checkpoints" / "latest.pt", kept)
    stopped = fit(_config(split, stop_after_steps=5), datasets=tiny_datasets())  # continues by itself
    assert not stopped.finished and stopped.weights is None and stopped.steps == 5
    assert not (split / "final.json").exists() and not (split / "weights.safetensors").exists()
    # As if killed after step 5 before its checkpoint: steps 4 and 5 are logged but only step 3 is saved.
    shutil.copy(kept, split / "checkpoints" / "latest.pt")
    resumed = fit(_config(split), datasets=tiny_datasets())
    a, b = load_checkpoint(straight.checkpoint), load_checkpoint(resumed.checkpoint)
    assert resumed.steps == straight.steps == 7 and resumed.finished
    for part in ("model", "average"):
        for key, value in a[part].items():
            assert torch.equal(value, b[part][key]), f"{part}.{key}"
    assert resumed.metrics == straight.metrics
    assert [r.step for r in resumed.history] == [r.step for r in straight.history] == [4, 7]
    assert _rows(split) == _rows(tmp_path / "straight")  # every step once, with the same loss
    # The attempt that went from 3 to 5 was lost with its checkpoint: the kept steps add up to 7.
    assert [(x["from_step"], x["to_step"]) for x in resumed.attempts] == [(0, 3), (3, 7)]
    final = json.loads((split / "final.json").read_text())
    assert final["step"] == final["total_steps"] == 7 and len(final["attempts"]) == 2
    assert final["wall_s_all_attempts"] == pytest.approx(sum(x["wall_s"] for x in final["attempts"]))


def test_resume_accepts_a_lower_learning_rate_and_records_the_change(tmp_path):
    fit(_config(tmp_path, stop_after_steps=2), datasets=tiny_datasets())
    rescued = fit(_config(tmp_path, recipe_overrides={"drop_rate": 0.3, "lr": 0.01}, steps=5),
                  datasets=tiny_datasets())
    assert rescued.finished and rescued.steps == 5
    (resume,) = _rows(tmp_path, kinds=("resume",))
    assert resume["step"] == 2
    assert resume["changed"] == {"recipe_overrides": [{"drop_rate": 0.3}, {"drop_rate": 0.3, "lr": 0.01}],
                                 "steps": [7, 5]}
    assert load_checkpoint(tmp_path)["optimizer"]["param_groups"][0]["lr"] < 0.01  # the new, annealed one


@pytest.mark.parametrize(("change", "field"), [
    ({"model_overrides": {"width": 0.25, "middle_repeats": 1}}, "model_overrides"),
    ({"batch_size": 32}, "batch_size"),
    ({"seed": 1}, "seed"),
    ({"data": DataConfig(source="fashion_mnist", path=None, image_size=20, in_channels=1)}, "data"),
    ({"recipe": "paper_jft", "recipe_overrides": {}}, "recipe.optimizer"),
])
def test_resume_refuses_changes_that_make_the_checkpoint_meaningless(tmp_path, change, field):
    fit(_config(tmp_path, stop_after_steps=1), datasets=tiny_datasets())
    with pytest.raises(ValueError, match=rf"cannot resume from .*latest.pt: {field}"):
        fit(dataclasses.replace(_config(tmp_path), **change), datasets=tiny_datasets())


def test_restart_starts_over_and_stale_temporary_files_go(tmp_path):
    fit(_config(tmp_path, stop_after_steps=2), datasets=tiny_datasets())
    stale = tmp_path / "checkpoints" / f".latest.pt.tmp-{os.getpid() + 1}"
    stale.write_bytes(b"")  # what a kill during a checkpoint write leaves
    again = fit(_config(tmp_path, restart=True, stop_after_steps=1), datasets=tiny_datasets())
    assert again.steps == 1 and [x["from_step"] for x in again.attempts] == [0]
    assert [r["step"] for r in _rows(tmp_path, kinds=("step",))] == [1]
    assert not stale.exists()


def test_a_kill_while_the_final_weights_are_written_resumes_and_its_temporary_file_goes(tmp_path):
    fit(_config(tmp_path, steps=3, stop_after_steps=2), datasets=tiny_datasets())
    stale = tmp_path / f".weights.safetensors.tmp-{os.getpid() + 1}"
    stale.write_bytes(b"\0" * 10)  # what a kill while writing the final weights leaves, beside no final.json
    again = fit(_config(tmp_path, steps=3), datasets=tiny_datasets())
    assert again.steps == 3 and [x["from_step"] for x in again.attempts] == [0, 2]
    assert not stale.exists() and (tmp_path / "weights.safetensors").is_file()


def test_a_new_run_refuses_to_overwrite_outputs_without_a_checkpoint(tmp_path):
    fit(_config(tmp_path, steps=2), datasets=tiny_datasets())
    shutil.rmtree(tmp_path / "checkpoints")
    with pytest.raises(ValueError, match=r"holds an earlier run's final.json, weights.safetensors.*--restart"):
        fit(_config(tmp_path, steps=2), datasets=tiny_datasets())
    assert (tmp_path / "weights.safetensors").is_file()


def test_every_file_of_a_run_has_the_umask_mode(tmp_path):
    previous = os.umask(0o022)
    try:
        fit(_config(tmp_path, steps=2, trackers=("tensorboard",)), datasets=tiny_datasets())
    finally:
        os.umask(previous)
    modes = {p.relative_to(tmp_path).as_posix(): p.stat().st_mode & 0o777 for p in tmp_path.rglob("*") if p.is_file()}
    assert {"weights.safetensors", "final.json", "checkpoints/latest.pt", "metrics.jsonl"} <= set(modes)
    assert set(modes.values()) == {0o644}, modes


def _augmented_datasets(*, augment: bool = True):
    """tiny_datasets with a training set that augments (random crop, flip and erasing), in memory."""
    from xception.data.batch_transforms import TensorPipeline
    from xception.data.in_memory import InMemoryImages

    tiny = tiny_datasets()
    images = ((tiny.train.tensors[0][:, 0] + 1) * 127.5).round().to(torch.uint8)  # (64, 16, 16)
    pipeline = TensorPipeline(image_size=16, in_channels=1, augment=augment, padding=2,
                              erase_probability=0.5 if augment else 0.0)
    return dataclasses.replace(tiny, train=InMemoryImages(images, tiny.train.tensors[1], pipeline=pipeline))


def _same_weights(a, b) -> bool:
    a, b = load_checkpoint(a.checkpoint)["model"], load_checkpoint(b.checkpoint)["model"]
    return all(torch.equal(value, b[key]) for key, value in a.items())


@pytest.mark.slow
def test_resume_with_workers_and_augmentation_continues_the_identical_sequence(tmp_path):
    straight = fit(_config(tmp_path / "straight", num_workers=2), datasets=_augmented_datasets())
    fit(_config(tmp_path / "split", num_workers=2, stop_after_steps=5), datasets=_augmented_datasets())
    resumed = fit(_config(tmp_path / "split", num_workers=1), datasets=_augmented_datasets())
    no_workers = fit(_config(tmp_path / "main", num_workers=0), datasets=_augmented_datasets())
    assert _same_weights(straight, resumed) and _same_weights(straight, no_workers)
    assert resumed.metrics == straight.metrics == no_workers.metrics
    plain = fit(_config(tmp_path / "plain", num_workers=0), datasets=_augmented_datasets(augment=False))
    assert not _same_weights(straight, plain)  # the augmentation is on and changes the training


def test_checkpoint_summary_gives_config_and_step_without_reading_tensors(tmp_path, monkeypatch):
    from xception.train import checkpoint
    from xception.train.checkpoint import load_training_checkpoint, read_summary

    fit(_config(tmp_path / "run", stop_after_steps=3), datasets=tiny_datasets())
    latest = tmp_path / "run" / "checkpoints" / "latest.pt"
    full = load_training_checkpoint(latest)

    def no_tensors(*args, **kwargs):
        raise AssertionError("read_summary loaded the checkpoint's tensors")

    monkeypatch.setattr(checkpoint.torch, "load", no_tensors)
    summary = read_summary(tmp_path / "run")
    assert summary["step"] == full["progress"]["step"] == 3
    assert json.loads(json.dumps(full["config"])) == summary["config"]
    assert summary["class_names"] == full["class_names"] and summary["format"] == full["format"]


def test_checkpoint_entries_are_the_parts_state_dicts(tmp_path):
    """The file format is what the stateful parts give (trainer, progress, processes) plus plain data,
    the same top-level entries as format 1 has always had."""
    fit(_config(tmp_path / "run", stop_after_steps=2), datasets=tiny_datasets())
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert set(state) == {"format", "model", "average", "optimizer", "scaler", "progress", "history", "bad_images",
                          "rng", "losses", "data_order", "config", "recipe", "num_classes", "class_names",
                          "git_commit"}


def test_run_directory_file_names_live_in_one_module():
    from pathlib import Path

    import xception.train

    root = Path(xception.train.__file__).parent
    for name in ("fit.py", "resume.py", "progress.py"):
        text = (root / name).read_text()
        for literal in ('"weights.safetensors"', '"best.safetensors"', '"final.json"', '"config.json"',
                        '"checkpoints"', '"split.json"'):
            assert literal not in text, f"{name} spells out {literal}: use xception.train.run_directory"
