"""Experiment trackers (`xception.train.trackers`): MLflow against a real `mlflow server` on
127.0.0.1 (SQLite store, local artifact root, both in a temporary folder), read back through
`MlflowClient`; the server killed mid-run; a continued run continuing its MLflow run; W&B offline;
the one-line refusals."""

from __future__ import annotations

import json
import logging
import os
import signal
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from spawn_ranks import free_port, run_ranks
from tiny_image_folder import train_argv, write_image_folder
from xception.cli import main
from xception.train.logbook import Logbook

mlflow = pytest.importorskip("mlflow")


def _argv(folder: Path, out: Path, *extra: str) -> list[str]:
    """train_argv without its `--set trackers=[]`: the trackers are the flags given here."""
    argv = train_argv(folder, out, *extra)
    at = argv.index("trackers=[]")
    return argv[:at - 1] + argv[at + 1:]


def _rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _tracking(run_dir: Path) -> dict:
    return json.loads((run_dir / "config.json").read_text())["tracking"]


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(run_dir / "weights.safetensors")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_image_folder(tmp_path_factory.mktemp("faces"), per_class={"train": 8, "val": 4})


@pytest.fixture(scope="module")
def untracked(folder, tmp_path_factory) -> Path:
    """The same training without any tracker: the reference for bit-identical weights."""
    out = tmp_path_factory.mktemp("untracked") / "run"
    assert main(train_argv(folder, out)) == 0
    return out


class MlflowServer:
    """A real `mlflow server` on 127.0.0.1, its SQLite store and artifacts under `root`."""

    def __init__(self, root: Path) -> None:
        self.root, self.process, self.uri = root, None, ""

    def start(self) -> None:
        port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
             "--artifacts-destination", str(self.root / "artifacts")],
            cwd=self.root, stdout=open(self.root / "server.log", "a"), stderr=subprocess.STDOUT,
            start_new_session=True)
        self.uri = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"mlflow server did not start: {(self.root / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """kill -9, the server and the workers it started."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def mlflow_home(tmp_path_factory):
    """One server for the module's tests (its start, migrations included, takes most of a minute on
    2 busy cores), killed whatever they do; a test that killed it gets it started again."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow"))
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def mlflow_server(mlflow_home, monkeypatch, request):
    """The running server, MLFLOW_TRACKING_URI pointing at it, an MLflow experiment of the test's own."""
    if not mlflow_home.running:
        mlflow_home.start()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_home.uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", request.node.name)
    # A dead server fails each call at once instead of after MLflow's minutes of retries.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    return mlflow_home


@pytest.mark.slow
def test_mlflow_run_read_back_equals_the_run_directory(folder, untracked, mlflow_server, tmp_path):
    from mlflow import MlflowClient

    out = tmp_path / "run"
    assert main(_argv(folder, out, "--tracker", "mlflow", "--tracker", "tensorboard")) == 0
    tracking = _tracking(out)
    assert tracking["trackers"] == ["mlflow", "tensorboard"]
    assert tracking["mlflow"]["tracking_uri"] == mlflow_server.uri
    client = MlflowClient(tracking_uri=mlflow_server.uri)
    run = client.get_run(tracking["mlflow"]["run_id"])
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert (params["train.model"], params["train.batch_size"], params["train.steps"]) == ("xception_small", "4", "6")
    assert params["recipe.name"] == "fashion_mnist_demo" and params["train.data.image_size"] == "16"
    # Every number of metrics.jsonl, at its step, and nothing else.
    expected: dict[str, list[tuple[int, float]]] = {}
    for row in _rows(out):
        for key, value in row.items():
            if isinstance(value, (int, float)) and key not in ("step", "epoch", "samples"):
                expected.setdefault(f"{row['kind']}/{key}", []).append((row["step"], float(value)))
    assert {"step/loss", "eval/loss", "eval/top1", "eval/roc_auc"} <= set(expected)
    assert set(run.data.metrics) == set(expected)
    for key, points in expected.items():
        history = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
        assert history == sorted(points), key
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"weights.safetensors", "curves.png"} <= artifacts
    downloaded = client.download_artifacts(run.info.run_id, "weights.safetensors", str(tmp_path))
    assert Path(downloaded).read_bytes() == (out / "weights.safetensors").read_bytes()
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    final = _weights(out)
    assert all(torch.equal(final[k], v) for k, v in _weights(untracked).items())


@pytest.mark.slow
def test_a_continued_run_continues_its_mlflow_run(folder, mlflow_server, tmp_path):
    from mlflow import MlflowClient

    out = tmp_path / "run"
    argv = _argv(folder, out, "--tracker", "mlflow", "--set", "log_every_steps=1")
    assert main([*argv, "--set", "stop_after_steps=3"]) == 0
    first = _tracking(out)["mlflow"]["run_id"]
    client = MlflowClient(tracking_uri=mlflow_server.uri)
    assert client.get_run(first).info.status == "KILLED"  # stopped, to be continued
    assert main(argv) == 0
    assert _tracking(out)["mlflow"]["run_id"] == first
    runs = client.search_runs([_tracking(out)["mlflow"]["experiment_id"]])
    assert [r.info.run_id for r in runs] == [first] and runs[0].info.status == "FINISHED"
    steps = sorted({m.step for m in client.get_metric_history(first, "step/loss")})
    assert steps == [1, 2, 3, 4, 5, 6]


@pytest.mark.slow
def test_a_run_that_fails_marks_its_mlflow_run_failed(folder, mlflow_server, tmp_path, capsys):
    from mlflow import MlflowClient

    out = tmp_path / "run"
    assert main(_argv(folder, out, "--tracker", "mlflow", "--set", "recipe.lr=1e30")) == 2  # diverges
    assert "the training loss became" in capsys.readouterr().err
    run = MlflowClient(tracking_uri=mlflow_server.uri).get_run(_tracking(out)["mlflow"]["run_id"])
    assert run.info.status == "FAILED"


def _fit_tracked(rank: int, out_dir: str) -> int:
    """One rank of a two-process run logging to MLflow (run by spawn_ranks.run_ranks)."""
    from tiny_classification import tiny_datasets
    from xception.data import DataConfig
    from xception.train import TrainConfig, fit

    config = TrainConfig(
        data=DataConfig(source="fashion_mnist", path=None, image_size=16, in_channels=1), model="xception_small",
        model_overrides={"width": 0.125, "middle_repeats": 1}, recipe="fashion_mnist_demo", steps=4, batch_size=16,
        precision="fp32", channels_last=False, compile=False, device="cpu", num_workers=0, progress=False,
        trackers=("mlflow",), out_dir=out_dir, log_every_steps=1)
    return fit(config, datasets=tiny_datasets()).steps


@pytest.mark.slow
def test_only_rank_0_of_a_distributed_run_logs(mlflow_server, tmp_path):
    from mlflow import MlflowClient

    out = tmp_path / "run"
    assert run_ranks(_fit_tracked, str(out)) == [4, 4]
    client = MlflowClient(tracking_uri=mlflow_server.uri)
    (run,) = client.search_runs([_tracking(out)["mlflow"]["experiment_id"]])  # one run, not one per rank
    assert run.info.run_id == _tracking(out)["mlflow"]["run_id"] and run.info.status == "FINISHED"
    losses = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "step/loss"))
    assert losses == [(r["step"], r["loss"]) for r in _rows(out) if r["kind"] == "step"]


@pytest.mark.slow
def test_mlflow_server_killed_mid_run_warns_once_and_changes_nothing(folder, untracked, mlflow_server, tmp_path,
                                                                      monkeypatch, caplog):
    write = Logbook.write

    def write_then_kill_at_step_3(self, kind, values):
        write(self, kind, values)
        if values.get("step") == 3 and mlflow_server.running:
            mlflow_server.kill()

    monkeypatch.setattr(Logbook, "write", write_then_kill_at_step_3)
    out = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="xception.train.trackers"):
        assert main(_argv(folder, out, "--tracker", "mlflow", "--set", "log_every_steps=1")) == 0
    warnings = [r.getMessage() for r in caplog.records if r.name == "xception.train.trackers"]
    assert len(warnings) == 1 and warnings[0].startswith("tracker mlflow failed (log_metrics: "), warnings
    assert (out / "final.json").is_file() and [r["step"] for r in _rows(out) if r["kind"] == "eval"][-1] == 6
    final = _weights(out)
    assert final.keys() == _weights(untracked).keys()
    assert all(torch.equal(final[k], v) for k, v in _weights(untracked).items())


@pytest.mark.slow
def test_wandb_offline_writes_the_run_and_sends_nothing(folder, untracked, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    for variable in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(variable, str(tmp_path / "wandb-home"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    out = tmp_path / "run"
    assert main(_argv(folder, out, "--tracker", "wandb")) == 0
    state = _tracking(out)["wandb"]
    assert state["mode"] == "offline" and state["project"] == "xception"
    (run_files,) = (tmp_path / "wandb-home" / "wandb").glob(f"offline-run-*-{state['run_id']}")
    records = _wandb_records(run_files / f"run-{state['run_id']}.wandb")
    (config,) = [r.config for r in records if r.WhichOneof("record_type") == "config"]
    params = {item.key: json.loads(item.value_json) for item in config.update}
    assert (params["train.model"], params["train.batch_size"]) == ("xception_small", 4)
    history: dict[int, dict] = {}  # W&B's rows by step: the step and eval rows of one step in one
    for record in records:
        if record.WhichOneof("record_type") == "history":
            row = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            history.setdefault(record.history.step.num, {}).update(row)
    for row in _rows(out):
        for key, value in row.items():
            if isinstance(value, (int, float)) and key not in ("step", "epoch", "samples"):
                assert history[row["step"]][f"{row['kind']}/{key}"] == value, (row["step"], key)
    assert history[6]["curves/_type"] == "image-file", sorted(history)
    kept = run_files / "files" / "weights.safetensors"
    assert not kept.is_symlink() and kept.read_bytes() == (out / "weights.safetensors").read_bytes()
    final = _weights(out)
    assert all(torch.equal(final[k], v) for k, v in _weights(untracked).items())


def _wandb_records(path: Path) -> list:
    """The protobuf records of a W&B run file: W&B's LevelDB-style log (a 7-byte header, then 32 KiB
    blocks of chunks, each with a 7-byte header: CRC, length, FULL/FIRST/MIDDLE/LAST)."""
    from wandb.proto import wandb_internal_pb2

    data, block, position, pending, records = path.read_bytes(), 32768, 7, b"", []
    assert data[:4] == b":W&B"
    while position + 7 <= len(data):
        left = block - position % block
        if left < 7:
            position += left
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + 7])
        body, position = data[position + 7:position + 7 + length], position + 7 + length
        if kind in (1, 2):
            pending = body
        elif kind in (3, 4):
            pending += body
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


@pytest.mark.slow
@pytest.mark.usefixtures("fashion_mnist")
def test_an_experiment_logs_each_run_to_its_trackers_and_keeps_its_runs(tmp_path):
    from test_experiments import TINY

    args = ["experiment", "residual", "--seeds", "1", "--out", str(tmp_path / "out"), "--runs-dir",
            str(tmp_path / "runs"), "--device", "cpu", "--threads", "1",
            *[f"--set={k}={json.dumps(v)}" for k, v in TINY.items()]]
    assert main([*args, "--tracker", "tensorboard"]) == 0
    runs = sorted(path.parent for path in (tmp_path / "runs").glob("*/seed0/config.json"))
    assert len(runs) == 2  # the two arms
    for run in runs:
        assert _tracking(run)["trackers"] == ["tensorboard"] and list((run / "tensorboard").glob("events.*"))
    first = json.loads((tmp_path / "out" / "results.json").read_text())["runs"]
    # What a run is tracked by is not part of it: without --tracker the same runs are reused.
    assert main(args) == 0
    assert sorted(path.parent for path in (tmp_path / "runs").glob("*/seed0/config.json")) == runs
    assert json.loads((tmp_path / "out" / "results.json").read_text())["runs"] == first


def test_a_fresh_run_refuses_an_mlflow_server_that_does_not_answer(folder, tmp_path, monkeypatch, capsys):
    uri = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert main(_argv(folder, tmp_path / "run", "--tracker", "mlflow")) == 2
    err = capsys.readouterr().err
    assert f"--tracker mlflow: no MLflow server answers at {uri} (MLFLOW_TRACKING_URI)" in err
    assert "Traceback" not in err and not (tmp_path / "run").exists()


def test_a_tracker_not_installed_names_the_extra(folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)  # as importlib sees a package that is not installed
    assert main(_argv(folder, tmp_path / "run", "--tracker", "wandb")) == 2
    assert "--tracker wandb needs the wandb package, which is not installed: pip install 'xception[track]'" in (
        capsys.readouterr().err)


def test_a_config_written_before_the_trackers_reads_tensorboard_as_a_tracker():
    from xception.train import TrainConfig

    def config(**values):
        return TrainConfig.from_dict({"data": {"source": "fashion_mnist", "path": None, "image_size": 28}, **values})

    assert config(tensorboard=False).trackers == ()
    assert config(tensorboard=True).trackers == ("tensorboard",)
    assert config().trackers == ("tensorboard",)
