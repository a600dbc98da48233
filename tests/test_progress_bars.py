"""Progress bars only on a terminal: into a log file (stderr to a file or a pipe) training and
evaluation write their logged lines, never tqdm's updates, each of which is a carriage return."""

from __future__ import annotations

import subprocess
import sys

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tiny_image_folder import train_argv, write_image_folder
from xception.tasks.classification import evaluate


def test_train_into_a_log_writes_the_logged_lines_and_no_bar(tmp_path):
    data = write_image_folder(tmp_path / "data", per_class={"train": 12, "val": 4})
    # The bar asked for, as it is by default: only the terminal decides.
    argv = [arg for arg in train_argv(data, tmp_path / "run", "--workers", "0", "--steps", "2")
            if arg != "--no-progress"]
    # Bytes, not text: universal newlines would turn tqdm's carriage returns into line ends.
    done = subprocess.run([sys.executable, "-m", "xception.cli", *argv], capture_output=True, timeout=300)
    err = done.stderr.decode()
    assert done.returncode == 0, err
    assert "\r" not in err, f"a progress bar went into the log: {err[-500:]!r}"
    # The evaluation at the end of the run, as logged: "INFO xception.train.fit: step 2 (epoch 0.33): ..."
    assert "INFO xception.train.fit: step 2 (epoch" in err, err
    assert "trained 2 steps" in done.stdout.decode()


def test_evaluate_with_progress_draws_no_bar_off_a_terminal(capfd):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    loader = DataLoader(TensorDataset(torch.randn(12, 1, 2, 2), torch.tensor([0, 1, 2] * 4)), batch_size=4)
    metrics = evaluate(model, loader, device=torch.device("cpu"), multilabel=False, ks=(1,), progress=True)
    assert metrics["examples"] == 12
    assert "\r" not in capfd.readouterr().err  # pytest's captured stderr is no terminal
