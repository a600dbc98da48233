"""`--bad-images error|skip` through the command line, on an image folder with an empty and a
truncated file, read by a DataLoader worker: `error` stops with one line naming the file, `skip`
leaves the files out, logs each once, counts them in metrics.jsonl, final.json and `xception eval`,
and stops past `--bad-image-fraction`."""

import json
import logging

import pytest

from tiny_image_folder import train_argv, write_image_folder
from xception.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """12 training images (one of them empty) and 6 validation images (one truncated), 2 classes."""
    root = write_image_folder(tmp_path_factory.mktemp("bad_folder"), per_class={"train": 6, "val": 3})
    (root / "train" / "light" / "5.png").rename(root / "train" / "light" / "broken.png")
    (root / "train" / "light" / "broken.png").write_bytes(b"")
    (root / "val" / "light" / "2.png").rename(root / "val" / "light" / "cut.png")
    (root / "val" / "light" / "cut.png").write_bytes((root / "val" / "light" / "1.png").read_bytes()[:60])
    return root


@pytest.fixture(scope="module")
def skipped_run(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "skip"
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("xception.data.bad_images").addHandler(handler)
    try:
        status = main(train_argv(folder, out, "--bad-images", "skip", "--bad-image-fraction", "0.2"))
    finally:
        logging.getLogger("xception.data.bad_images").removeHandler(handler)
    return status, out, [r.getMessage() for r in records]


@pytest.mark.slow
def test_bad_images_error_is_the_default_and_names_the_file(folder, tmp_path, capsys):
    assert main(train_argv(folder, tmp_path / "run")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"xception train: error: cannot read image {folder / 'train/light/broken.png'}: the file "
                       "is empty (0 bytes); replace or delete the file, or pass --bad-images skip to leave it out")
    assert not any("Traceback" in line for line in err)


@pytest.mark.slow
def test_bad_images_skip_logs_each_file_once_and_counts_them(skipped_run, folder):
    status, out, messages = skipped_run
    assert status == 0
    # 12 training images, 4 a step: 3 steps an epoch, 2 epochs, so broken.png came up twice.
    assert [m for m in messages if "broken.png" in m] == [
        f"skipping unreadable image {folder / 'train/light/broken.png'}: the file is empty (0 bytes)"]
    assert len([m for m in messages if "cut.png" in m]) == 1
    evals = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [row for row in evals if row["kind"] == "eval"]
    assert [(r["step"], r["examples"], r["bad_images"], r["train_bad_images"]) for r in evals] == [
        (3, 5, 1, 1), (6, 5, 1, 1)]
    final = json.loads((out / "final.json").read_text())
    assert (final["metrics"]["bad_images"], final["metrics"]["train_bad_images"]) == (1, 1)


def test_bad_images_skip_stops_past_the_fraction(folder, tmp_path, capsys):
    assert main(train_argv(folder, tmp_path / "run", "--bad-images", "skip", "--bad-image-fraction", "0")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("xception train: error: 1 unreadable image(s) in the training split, more than "
                              "--bad-images skip allows (0, a fraction 0 of 12; first: ")
    assert err[-1].endswith("broken.png): check the disk and the data, or allow more with --bad-image-fraction")


def test_eval_bad_images_error_names_the_file_read_by_a_worker(skipped_run, folder, capsys):
    _, out, _ = skipped_run
    assert main(["eval", "--weights", str(out / "weights.safetensors"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith(f"xception eval: error: cannot read image {folder / 'val/light/cut.png'}: ")
    assert "Traceback" not in err and "worker" not in err


def test_eval_bad_images_skip_counts_them(skipped_run, capsys):
    _, out, _ = skipped_run
    assert main(["eval", "--weights", str(out / "weights.safetensors"), "--device", "cpu", "--json",
                 "--bad-images", "skip", "--bad-image-fraction", "0.2"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    final = json.loads((out / "final.json").read_text())["metrics"]
    assert (metrics["examples"], metrics["bad_images"]) == (5, 1)
    assert metrics["top1"] == pytest.approx(final["top1"])


@pytest.mark.slow
def test_bad_images_skipped_before_a_resume_stay_counted(folder, tmp_path):
    import shutil

    from xception.train.checkpoint import load_training_checkpoint

    data, out = shutil.copytree(folder, tmp_path / "data"), tmp_path / "run"
    argv = train_argv(data, out, "--bad-images", "skip", "--bad-image-fraction", "0.2")
    assert main([*argv, "--set", "stop_after_steps=3"]) == 0
    broken = str(data / "train/light/broken.png")
    assert load_training_checkpoint(out)["bad_images"] == {broken: "the file is empty (0 bytes)"}
    shutil.copy(data / "train/light/0.png", broken)  # repaired: the resumed part reads it fine
    assert main(["train", "--resume", str(out), "--set", "stop_after_steps=null"]) == 0
    final = json.loads((out / "final.json").read_text())
    assert (final["step"], final["metrics"]["train_bad_images"]) == (6, 1)


def _rank(rank: int, port: int, argv: list[str], queue) -> None:
    import os

    import torch

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE="2")
    try:
        queue.put((rank, main(argv)))
    except BaseException as error:  # report instead of leaving the parent waiting
        queue.put((rank, repr(error)))
        raise
    finally:
        from xception.distributed import close_distributed

        close_distributed()


@pytest.mark.slow
def test_bad_images_skip_on_two_processes_counts_each_file_once(folder, tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ddp"
    argv = train_argv(folder, out, "--bad-images", "skip", "--bad-image-fraction", "0.2", "--workers", "0")
    context = mp.get_context("spawn")
    queue = context.SimpleQueue()
    processes = [context.Process(target=_rank, args=(r, port, argv, queue)) for r in range(2)]
    for p in processes:
        p.start()
    statuses = dict(queue.get() for _ in processes)
    for p in processes:
        p.join(timeout=120)
    assert statuses == {0: 0, 1: 0}
    # Each rank met broken.png in some epoch and only one rank read cut.png: gathered, each counts once.
    final = json.loads((out / "final.json").read_text())["metrics"]
    assert (final["examples"], final["bad_images"], final["train_bad_images"]) == (5, 1, 1)


@pytest.mark.slow
def test_a_run_stopped_by_a_bad_image_resumes_with_skip(tmp_path, capsys):
    data = write_image_folder(tmp_path / "data", per_class={"train": 6, "val": 3})
    out = tmp_path / "run"
    assert main([*train_argv(data, out), "--set", "stop_after_steps=3"]) == 0
    (data / "train/dark/2.png").write_bytes(b"")  # the disk loses a file after step 3
    assert main(["train", "--resume", str(out), "--set", "stop_after_steps=null"]) == 2
    assert "cannot read image " + str(data / "train/dark/2.png") in capsys.readouterr().err
    assert main(["train", "--resume", str(out), "--set", "stop_after_steps=null", "--bad-images", "skip",
                 "--bad-image-fraction", "0.1"]) == 0
    final = json.loads((out / "final.json").read_text())
    assert (final["step"], final["metrics"]["train_bad_images"]) == (6, 1)
