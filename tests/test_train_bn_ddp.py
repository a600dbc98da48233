"""Under DDP, the metrics a run reports are those of the weights it saves: `xception eval` of a
2-process run's weights.safetensors gives exactly the final.json metrics (gloo, CPU).

Each process updates its own BatchNorm statistics from its micro-batch; without a broadcast of rank
0's before evaluation, rank 1 scores its half of the validation set with statistics that are not
in the exported file, and the combined metrics belong to no saved model."""

import json

import pytest

from spawn_ranks import run_ranks
from tiny_image_folder import train_argv, write_image_folder
from xception.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


def _train_on_rank(rank: int, argv: list[str]) -> int:
    return main(argv)


@pytest.mark.slow
def test_ddp_run_weights_evaluate_to_exactly_its_final_metrics(tmp_path, capsys):
    data = write_image_folder(tmp_path / "data", per_class={"train": 24, "val": 10})
    run = tmp_path / "run"
    # BatchNorm policy "copy": the average takes each process's live statistics at every step, the
    # case where they differ most between processes.
    argv = train_argv(data, run, "--set", "recipe.average_bn_policy=copy", "--batch-size", "8", "--workers", "0")
    assert run_ranks(_train_on_rank, argv) == [0, 0]
    final = json.loads((run / "final.json").read_text())["metrics"]
    assert main(["eval", "--weights", str(run / "weights.safetensors"), "--json", "--device", "cpu",
                 "--precision", "fp32", "--runtime", "torch"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["examples"] == final["examples"] == 20
    # Two classes: no top-5 in either (it is reported with more than 5 classes only).
    assert (evaluated["correct1"], evaluated.get("correct5")) == (final["correct1"], final.get("correct5"))
    assert evaluated["loss"] == pytest.approx(final["loss"], rel=1e-6, abs=0)
