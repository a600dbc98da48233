"""Checkpoints: atomic writes (a crash keeps the previous latest), weights_only loading, RNG round trip."""

import os
import random

import numpy as np
import pytest
import torch

from xception.train import checkpoint
from xception.train.checkpoint import (
    NotACheckpointError,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)


def test_checkpoint_crash_mid_write_keeps_previous_latest(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "latest.pt"
    save_checkpoint({"step": 1, "w": torch.ones(3)}, path)
    real_save = torch.save

    def crash_half_way(state, f):
        real_save(state, f)
        f.truncate(10)  # a partial file on disk, then the process dies
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(checkpoint.torch, "save", crash_half_way)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"step": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    state = load_checkpoint(path)
    assert state["step"] == 1 and torch.equal(state["w"], torch.ones(3))
    assert os.listdir(path.parent) == ["latest.pt"]  # no temporary file left behind


def test_checkpoint_replaces_atomically_and_loads_weights_only(tmp_path):
    path = tmp_path / "latest.pt"
    save_checkpoint({"step": 1}, path)
    save_checkpoint({"step": 2, "config": {"a": [1, 2], "b": None}}, path)
    assert load_checkpoint(path)["step"] == 2
    torch.save({"bad": object()}, tmp_path / "pickled.pt")  # arbitrary objects are refused
    with pytest.raises(NotACheckpointError, match="pickled.pt holds Python objects besides tensors"):
        load_checkpoint(tmp_path / "pickled.pt")


def test_checkpoint_run_directory_and_missing_file(tmp_path):
    save_checkpoint({"step": 3}, tmp_path / "run" / "checkpoints" / "latest.pt")
    assert load_checkpoint(tmp_path / "run")["step"] == 3
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nowhere")


def test_checkpoint_rng_states_round_trip_through_file(tmp_path):
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    save_checkpoint({"rng": capture_rng_state()}, tmp_path / "c.pt")
    expected = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    torch.manual_seed(9), np.random.seed(9), random.seed(9)
    restore_rng_state(load_checkpoint(tmp_path / "c.pt")["rng"])
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    assert [random.random() for _ in range(3)] == expected[2]
