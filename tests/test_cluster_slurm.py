"""configs/cluster/slurm/train.sbatch on a real one-node SLURM (tests/local_slurm.py): warned with
SIGUSR1 (`scancel --signal=USR1`, what `#SBATCH --signal=USR1@120` sends before the time limit), the
run checkpoints and stops and the script requeues the job; preempted without warning (`scontrol
requeue`), SLURM requeues it. The requeued job continues exactly: the final weights equal an
uninterrupted run's, and the run's files record each interruption."""

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cluster_docs import PLACE, documented_launch
from local_slurm import LocalSlurm, installed_or_skip
from spawn_ranks import free_port
from test_train_faults import _environment, _logged_steps, _same_weights, _train_args
from tiny_image_folder import write_image_folder

SCRIPT = Path(__file__).resolve().parents[1] / "configs" / "cluster" / "slurm" / "train.sbatch"
BIN = Path(sys.executable).parent  # torchrun and xception, which the script calls by name
STEPS = 40
# A job's states until it ends; COMPLETING also between an attempt's end and its requeue.
ALIVE = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    installed_or_skip()
    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm")).start()
    yield cluster
    cluster.stop()


def _job_environment() -> dict[str, str]:
    """What sbatch passes on to the job (its default, --export=ALL): the tools on PATH, a free port."""
    return {**_environment(), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            "XCEPTION_RDZV_PORT": str(free_port())}


def _wait_for_step(slurm: LocalSlurm, job_id: str, run: Path, step: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while _logged_steps(run) < step:
        state = slurm.job(job_id)["JobState"]
        assert state in ALIVE and time.monotonic() < deadline, (
            state, slurm.logs())
        time.sleep(0.2)


def test_sbatch_runs_the_documented_command():
    """train.sbatch's torchrun is docs/clusters.md's, with SLURM's values in the place options."""
    lines = SCRIPT.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("srun "))
    end = next(i for i in range(start, len(lines)) if not lines[i].endswith("\\"))
    words = shlex.split(" ".join(line.rstrip("\\") for line in lines[start:end + 1]))
    torchrun = words[words.index("torchrun", words.index("torchrun") + 1) + 1:]  # after `bash -c '...' torchrun`
    options = torchrun[:torchrun.index("--no-python") + 1]
    assert torchrun[len(options):] == ["xception", "train", "$@"]
    launch = documented_launch()
    assert options[::2] == launch.torchrun[::2]  # the same options in the same order (each takes one value)
    values, documented = dict(zip(options, options[1:], strict=False)), dict(zip(launch.torchrun, launch.torchrun[1:],
                                                                                  strict=False))
    assert {k: v for k, v in values.items() if k in PLACE} == {
        "--nnodes": "$SLURM_NNODES", "--nproc-per-node": "$nproc_per_node",
        "--rdzv-endpoint": "$head_node_ip:${XCEPTION_RDZV_PORT:-29500}", "--rdzv-id": "$SLURM_JOB_ID"}
    assert all(values[k] == documented[k] for k in options[::2] if k not in PLACE and k != "--no-python")
    assert all(f"export {name}={value}" in lines for name, value in launch.environment.items())


def test_sbatch_requeued_by_sigusr1_and_by_preemption_ends_bit_identical(slurm, tmp_path):
    data = write_image_folder(tmp_path / "data", per_class={"train": 24, "val": 10})
    straight = tmp_path / "straight"
    subprocess.run([str(BIN / "xception"), *_train_args(data, straight, steps=STEPS)], env=_environment(),
                   check=True, capture_output=True, timeout=300)

    run, log = tmp_path / "run", tmp_path / "job.out"
    command, *arguments = _train_args(data, run, steps=STEPS)  # the script runs `xception train ARGUMENTS`
    assert command == "train"
    job_id = slurm.submit("--nodes", "1", f"--output={log}", str(SCRIPT), *arguments, env=_job_environment())
    _wait_for_step(slurm, job_id, run, 10)
    slurm.run("scancel", "--signal=USR1", job_id)  # the warning before a time limit or a preemption
    while slurm.job(job_id)["Restarts"] == "0":  # the script requeues the stopped run
        assert slurm.job(job_id)["JobState"] in ALIVE, log.read_text()
        time.sleep(0.2)
    _wait_for_step(slurm, job_id, run, 25)
    # A preemption without warning: SLURM sends SIGTERM (SIGKILL after KillWait) and requeues the job.
    slurm.run("scontrol", "requeue", job_id)
    job = slurm.wait_until_done(job_id, timeout=400)
    output = log.read_text()
    assert job["JobState"] == "COMPLETED" and job["Restarts"] == "2", (job, output[-3000:])
    assert "requeued 2 times" in output and "requeueing job" in output, output[-3000:]

    assert _same_weights(run / "weights.safetensors", straight / "weights.safetensors")
    final = json.loads((run / "final.json").read_text())
    attempts = final["attempts"]
    assert len(attempts) == 3 and attempts[0]["stopped_by"] == "SIGUSR1", attempts
    assert attempts[0]["to_step"] == attempts[1]["from_step"] >= 10  # stopped after a step, checkpointed there
    assert attempts[1]["to_step"] == attempts[2]["from_step"] >= 24 and attempts[2]["to_step"] == STEPS
    assert attempts[1]["stopped_by"] == "SIGTERM"  # it saved after the step SIGTERM found it in
    assert json.loads((run / "config.json").read_text())["attempts"] == attempts[:2]


@pytest.mark.usefixtures("fashion_mnist")
def test_experiment_as_a_job_array_equals_the_sequential_command(slurm, tmp_path, monkeypatch, capsys):
    """`xception experiment residual --launcher slurm`, two arms x two seeds of a tiny scale: four
    array tasks and a report job that waits for them give the sequential command's results; a second
    submission finds every run finished and submits the report alone."""
    from test_experiments import TINY
    from xception.cli import main

    settings = [f"--set={key}={json.dumps(value)}" for key, value in TINY.items()]
    common = ["experiment", "residual", "--seeds", "2", "--device", "cpu", "--threads", "1", *settings]
    assert main([*common, "--out", str(tmp_path / "here"), "--runs-dir", str(tmp_path / "runs_here")]) == 0
    for name, value in {**slurm.environment, **_job_environment()}.items():
        monkeypatch.setenv(name, value)
    arguments = [*common, "--out", str(tmp_path / "there"), "--runs-dir", str(tmp_path / "runs_there"),
                 "--launcher", "slurm"]
    capsys.readouterr()
    assert main(arguments) == 0
    printed = capsys.readouterr().out
    assert "4 runs" in printed, printed
    report_job = printed.split("report job ")[1].split(":")[0]
    job = slurm.wait_until_done(report_job, timeout=600)
    logs = "\n".join(p.read_text()[-1500:] for p in (tmp_path / "there" / "slurm").glob("*.out"))
    assert job["JobState"] == "COMPLETED", (job, logs)
    here, there = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("here", "there"))
    assert [(r["arm"], r["seed"], r["test"]) for r in here["runs"]] == [(r["arm"], r["seed"], r["test"])
                                                                       for r in there["runs"]]
    assert [c["verdict"] for c in here["claims"]] == [c["verdict"] for c in there["claims"]]
    assert main(arguments) == 0  # again: nothing left to train
    assert "no array submitted" in capsys.readouterr().out
