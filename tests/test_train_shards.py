"""`xception train --dataset webdataset` on shards written by `xception data export`: it trains, and
the shards evaluate exactly as the image folder they were written from (the evaluation crop once),
on 1 process and on 2 (gloo, CPU)."""

import json

import pytest

from spawn_ranks import run_ranks
from tiny_image_folder import export_shards, train_argv, write_image_folder
from xception.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


def _train(shards, out) -> list[str]:
    return train_argv(shards, out, "--dataset", "webdataset", "--batch-size", "8", "--workers", "0")


def _eval(capsys, weights, *source) -> dict:
    capsys.readouterr()
    assert main(["eval", "--weights", str(weights), "--json", "--device", "cpu", "--precision", "fp32", "--runtime", "torch", *source]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    folder = write_image_folder(root / "folder", per_class={"train": 24, "val": 10})  # 20-pixel images: the 16-pixel crop is a real crop
    return folder, export_shards(folder, root / "shards", shard_size=4)


def test_train_on_shards_and_evaluate_them_as_the_folder(shards, tmp_path, capsys):
    folder, directory = shards
    assert main(_train(directory, tmp_path / "run")) == 0
    final = json.loads((tmp_path / "run" / "final.json").read_text())["metrics"]
    weights = tmp_path / "run" / "weights.safetensors"
    on_shards = _eval(capsys, weights)  # the data of the weights' metadata: the shards
    on_folder = _eval(capsys, weights, "--dataset", "imagefolder", "--data", str(folder))
    assert on_shards["examples"] == on_folder["examples"] == final["examples"] == 20
    # and the runtime's words, which say whether its compiled package was built or found in the cache
    timings = ("seconds", "images_per_second", "runtime")
    assert {k: v for k, v in on_shards.items() if k not in timings} == {k: v for k, v in on_folder.items()
                                                                         if k not in timings}
    assert on_shards["loss"] == pytest.approx(final["loss"], rel=1e-6)


def _train_on_rank(rank, argv):
    return main(argv)


@pytest.mark.slow
def test_train_on_shards_with_two_processes(shards, tmp_path, capsys):
    _, directory = shards
    run = tmp_path / "run"
    assert run_ranks(_train_on_rank, _train(directory, run)) == [0, 0]
    final = json.loads((run / "final.json").read_text())
    assert final["step"] == 6 and final["metrics"]["examples"] == 20
    assert _eval(capsys, run / "weights.safetensors")["correct1"] == final["metrics"]["correct1"]
