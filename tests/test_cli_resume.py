"""`xception train` on an image folder, as a user runs it: a stopped run says so and has no final
files; `--resume COPY` continues in the copy and leaves every byte of the original as it was;
`--resume SRC --out DST` writes only to DST; the same command again continues by itself."""

import hashlib
import json
import shutil

import pytest

from tiny_image_folder import train_argv, write_image_folder
from xception.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


def _train(data, out, *extra) -> list[str]:
    return train_argv(data, out, "--batch-size", "8", "--workers", "0", *extra)


def _fingerprint(directory) -> dict[str, str]:
    return {p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data = write_image_folder(root / "data", per_class={"train": 24, "val": 10})
    assert main(_train(data, root / "run", "--set", "stop_after_steps=3")) == 0
    return data, root / "run"


def test_cli_a_stopped_run_says_where_it_stopped_and_has_no_final_files(stopped_run, capsys):
    data, run = stopped_run
    assert not (run / "final.json").exists() and not (run / "weights.safetensors").exists()
    probe = run.parent / "probe"
    shutil.copytree(run, probe)
    assert main(_train(data, probe, "--set", "stop_after_steps=4")) == 0
    assert "stopped at step 4 of 6" in capsys.readouterr().out


def test_cli_resume_of_a_copy_continues_in_the_copy_and_leaves_the_original_untouched(stopped_run, capsys):
    _, run = stopped_run
    copy = run.parent / "copy"
    shutil.copytree(run, copy)
    before = _fingerprint(run)
    assert main(["train", "--resume", str(copy), "--no-progress"]) == 0
    assert "trained 6 steps" in capsys.readouterr().out
    assert _fingerprint(run) == before
    final = json.loads((copy / "final.json").read_text())
    assert final["step"] == 6 and (copy / "weights.safetensors").is_file()
    steps = [json.loads(line)["step"] for line in (copy / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["kind"] == "step"]
    assert steps == sorted(set(steps))


def test_cli_resume_into_another_directory_only_reads_the_source(stopped_run):
    _, run = stopped_run
    source = run.parent / "source"
    shutil.copytree(run, source)
    before = _fingerprint(source)
    target = run.parent / "target"
    assert main(["train", "--resume", str(source / "checkpoints" / "latest.pt"), "--out", str(target),
                 "--no-progress"]) == 0
    assert _fingerprint(source) == before
    assert json.loads((target / "final.json").read_text())["attempts"][0]["to_step"] == 3
