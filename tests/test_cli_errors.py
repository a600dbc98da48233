"""Every fault and bad input of issue 11 through the command line: a user's mistake is one line
naming the thing and what to do (exit status 2, no traceback); a bug keeps its traceback."""

import errno
import re
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

from test_data_images import png_bytes
from tiny_image_folder import export_shards, train_argv, write_image_folder
from xception.cli import main
from xception.models import create_model
from xception.models.weights import save_weights

pytestmark = pytest.mark.usefixtures("one_thread")


def one_line_error(capsys, command: str) -> str:
    """The message of the `xception COMMAND: error: ...` line, checking that nothing else went wrong."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith(f"xception {command}: error: ")]
    assert len(lines) == 1, err
    return lines[0].removeprefix(f"xception {command}: error: ")


def bomb(path) -> None:
    """A PNG that claims 20000 x 20000 pixels (over PIL's limit) and holds one."""
    path.write_bytes(png_bytes(np.zeros((1, 1), np.uint8), color_type=0, bit_depth=8, size=(20000, 20000)))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("folder"), per_class={"train": 4, "val": 2})


@pytest.fixture(scope="module")
def weights(folder, tmp_path_factory):
    """Weights whose metadata points at `folder`, as training writes them (untrained: no training needed)."""
    model = create_model("xception_small", num_classes=2, in_channels=1, width=0.125, middle_repeats=1)
    data = {"source": "imagefolder", "path": str(folder), "image_size": 16, "in_channels": 1}
    return save_weights(model, tmp_path_factory.mktemp("weights") / "w.safetensors",
                        metadata={"class_names": ["dark", "light"], "data": data})


NOISE = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
WRITE_UNREADABLE = {
    "empty": (lambda p: p.write_bytes(b""), "the file is empty (0 bytes)"),
    "truncated": (lambda p: p.write_bytes(png_bytes(NOISE, color_type=0, bit_depth=8)[:2000]), "OSError: "),
    "not_an_image": (lambda p: p.write_text("GIF89a? no, just text"), "PIL does not recognise it as an image"),
    "bomb": (bomb, "Image size (400000000 pixels) exceeds limit"),
}


@pytest.mark.parametrize("kind", WRITE_UNREADABLE)
def test_cli_predict_unreadable_image_is_one_line(kind, weights, tmp_path, capsys):
    write, reason = WRITE_UNREADABLE[kind]
    write(tmp_path / "photo.png")
    assert main(["predict", str(tmp_path / "photo.png"), "--weights", str(weights), "--device", "cpu"]) == 2
    message = one_line_error(capsys, "predict")
    assert message.startswith(f"cannot read image {tmp_path / 'photo.png'}: {reason}")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
@pytest.mark.parametrize("command", ["predict", "eval", "train"])
def test_cli_cuda_without_a_gpu_is_one_line(command, weights, folder, tmp_path, capsys):
    argv = {"predict": ["predict", str(folder / "val/dark/0.png"), "--weights", str(weights)],
            "eval": ["eval", "--weights", str(weights)],
            "train": train_argv(folder, tmp_path / "run")}[command]
    assert main([*argv, "--device", "cuda"]) == 2
    assert one_line_error(capsys, command).endswith("CUDA is not available; use --device cpu")


def test_cli_train_decompression_bomb_is_one_line(folder, tmp_path, capsys):
    import shutil

    data = shutil.copytree(folder, tmp_path / "data")
    bomb(data / "train/dark/huge.png")
    assert main(train_argv(data, tmp_path / "run")) == 2
    message = one_line_error(capsys, "train")
    assert message.startswith(f"cannot read image {data / 'train/dark/huge.png'}: Image size (400000000 pixels)")
    assert message.endswith("resize it, or raise PIL.Image.MAX_IMAGE_PIXELS if you trust the file, "
                            "or pass --bad-images skip to leave it out")


def test_cli_eval_decompression_bomb_read_by_a_worker_is_one_line(folder, weights, tmp_path, capsys):
    import shutil

    data = shutil.copytree(folder, tmp_path / "data")
    bomb(data / "val/light/huge.png")
    assert main(["eval", "--weights", str(weights), "--data", str(data), "--device", "cpu"]) == 2
    assert one_line_error(capsys, "eval").startswith(f"cannot read image {data / 'val/light/huge.png'}: Image size")


DISK_FULL = re.compile(r"no space left on the device to write (?P<path>\S+): it needs about (?P<needed>[\d.]+) MB "
                       r"and [\d.]+ MB are free there; free some space or write elsewhere \(--out\)")


def test_cli_disk_full_names_the_file_and_the_bytes_needed(folder, tmp_path, capsys, monkeypatch):
    def full_disk(state, file):
        file.write(b"\0" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    assert main(train_argv(folder, tmp_path / "run")) == 2
    found = DISK_FULL.fullmatch(one_line_error(capsys, "train"))
    assert found and found["path"] == str(tmp_path / "run/checkpoints/latest.pt")
    assert 1.5 < float(found["needed"]) < 3  # model, Polyak average and momentum: 3 x 0.64 MB
    assert list((tmp_path / "run/checkpoints").iterdir()) == []  # the partial temporary file is gone


@pytest.fixture
def small_filesystem(tmp_path):
    """A 1 MiB tmpfs (needs root, as in this project's CI container; skipped elsewhere)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (not root)")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_cli_disk_full_on_a_real_small_filesystem(folder, small_filesystem, capsys):
    # torch's C++ writer reports "unexpected pos" with the real ENOSPC only in the exception chain.
    assert main(train_argv(folder, small_filesystem / "run")) == 2
    found = DISK_FULL.fullmatch(one_line_error(capsys, "train"))
    assert found and found["path"] == str(small_filesystem / "run/checkpoints/latest.pt")


class Payload:
    """Unpickling this creates the file `marker`: code that a checkpoint loader must never run."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def write_not_a_checkpoint(kind: str, path) -> None:
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("step: 100\n")
    elif kind == "pickled_object":
        torch.save({"config": {"model": "xception"}, "payload": Image.new("L", (1, 1))}, path)
    elif kind == "code_payload":
        torch.save({"format": "xception-train-checkpoint/1", "payload": Payload(path.with_name("ran"))}, path)
    elif kind == "cut":
        torch.save({"format": "xception-train-checkpoint/1", "w": torch.zeros(1000)}, path)
        path.write_bytes(path.read_bytes()[:300])
    elif kind == "other_torch_file":
        torch.save({"model": {"w": torch.zeros(2)}}, path)
    else:
        save_weights(create_model("xception_small", num_classes=2, width=0.125, middle_repeats=1), path)


@pytest.mark.parametrize(("kind", "reason"), [
    ("empty", "is empty (0 bytes), not a training checkpoint"),
    ("text", "is not a training checkpoint (not a file torch.save writes: neither a zip archive nor a pickle)"),
    ("pickled_object", "holds Python objects besides tensors and plain data, which are not loaded"),
    ("code_payload", "holds Python objects besides tensors and plain data, which are not loaded"),
    ("cut", "is not a training checkpoint (torch.load: RuntimeError: PytorchStreamReader failed"),
    ("other_torch_file", "is not an xception training checkpoint (torch reads it, but it has no 'format'"),
    ("safetensors", "is a safetensors weight file, not a training checkpoint (weight files go to --weights"),
])
def test_cli_resume_of_a_file_that_is_not_a_checkpoint_is_one_line(kind, reason, tmp_path, capsys):
    path = tmp_path / "latest.pt"
    write_not_a_checkpoint(kind, path)
    assert main(["train", "--resume", str(path)]) == 2
    message = one_line_error(capsys, "train")
    assert message.startswith(f"{path} ") and reason in message
    assert message.endswith("give checkpoints/latest.pt or best.pt of a training run, or its directory")
    assert not (tmp_path / "ran").exists()


def test_cli_diverged_loss_names_the_step_and_the_checkpoint(folder, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_argv(folder, out, "--set", "recipe.lr=1e30", "--set", "checkpoint_every_steps=1")) == 2
    message = one_line_error(capsys, "train")
    found = re.fullmatch(r"the training loss became (nan|inf) at step (\d+) \(learning rate \S+\); the last "
                         r"checkpoint, (\S+), is from step (\d+): resume from it \(xception train --resume (\S+)\) "
                         r"with a lower learning rate \(--set recipe.lr=...\) or --precision fp32", message)
    assert found, message
    assert int(found[4]) == int(found[2]) - 1 and found[3] == str(out / "checkpoints/latest.pt") and found[5] == str(out)


@pytest.mark.parametrize(("assignment", "message"), [
    ("epochs=abc", "epochs='abc' is not a number or null"),
    ("batch_size=1.5", "batch_size=1.5 is not an integer"),
    ("precision=fp8", "precision='fp8' is not one of 'fp32', 'bf16', 'fp16' or null"),
    ("recipe.lr=fast", "recipe.lr='fast' is not a number"),
    ("model.fc_layers=[16, \"x\"]", "model.fc_layers=(16, 'x') is not a list of integers"),
    ("data.image_size=big", "data.image_size='big' is not an integer"),
])
def test_cli_set_value_of_the_wrong_type_is_one_line(assignment, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--model", "xception_small", "--set", assignment]) == 2
    assert one_line_error(capsys, "train").startswith(f"{message}; values are JSON: ")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("bug", [KeyError("config"), TypeError("unsupported operand"),
                                 ValueError("raised inside a library")])
def test_cli_bug_keeps_its_traceback(bug, monkeypatch):
    import xception.cli.models

    def broken(args):
        if isinstance(bug, ValueError):
            np.zeros(2).reshape(3)  # a ValueError raised by numpy, not by one of our checks
        raise bug

    monkeypatch.setattr(xception.cli.models, "run", broken)
    with pytest.raises(type(bug)):
        main(["models"])


@pytest.mark.parametrize(("name", "text", "message"), [
    ("run.toml", 'model = "xception_small\n', "is not valid TOML: Illegal character"),
    ("run.json", '{"model": ', "is not valid JSON: Expecting value: line 1 column 11"),
])
def test_cli_config_file_that_does_not_parse_is_one_line(name, text, message, tmp_path, capsys):
    (tmp_path / name).write_text(text)
    assert main(["train", "--config", str(tmp_path / name)]) == 2
    assert one_line_error(capsys, "train").startswith(f"config file {tmp_path / name} {message}")


@pytest.mark.parametrize("split", ["val", "train"])
def test_cli_data_inspect_unreadable_image_is_one_line(split, folder, tmp_path, capsys):
    import shutil

    data = shutil.copytree(folder, tmp_path / "data")
    for path in (data / split).rglob("*.png"):  # whichever the summary or the timed (worker) loader reads first
        path.write_bytes(b"")
    assert main(["data", "inspect", "--source", "imagefolder", "--data", str(data), "--image-size", "16",
                 "--batch-size", "2", "--batches", "2", "--num-workers", "1"]) == 2
    assert re.fullmatch(rf"cannot read image {data / split}/\w+/\d\.png: the file is empty \(0 bytes\); .*",
                        one_line_error(capsys, "data"))


def test_cli_disk_full_without_a_path_is_still_one_line(folder, tmp_path, capsys, monkeypatch):
    from xception.train.logbook import Logbook

    def full_disk(self, kind, values):
        raise OSError(errno.ENOSPC, "No space left on device")  # as a plain file.write raises it: no file name

    monkeypatch.setattr(Logbook, "write", full_disk)
    assert main(train_argv(folder, tmp_path / "run")) == 2
    assert one_line_error(capsys, "train") == ("no space left on the device while writing (-v shows where); "
                                               "free some space or write elsewhere (--out)")


def test_cli_too_few_shards_for_the_workers_is_one_line(folder, tmp_path, capsys):
    shards = export_shards(folder, tmp_path / "shards", shard_size=100)
    argv = train_argv(folder, tmp_path / "run", "--dataset", "webdataset", "--data", str(shards), "--workers", "2")
    assert main(argv) == 2  # raised inside a DataLoader worker, reported by the main process
    assert one_line_error(capsys, "train") == ("1 shards cannot feed 1 ranks x 2 workers: write at least that many "
                                               "shards (a smaller shard_size) or use fewer workers")
