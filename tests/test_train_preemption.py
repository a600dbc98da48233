"""SIGUSR1 (what SLURM sends before a time limit or a preemption) and SIGTERM (what Kubernetes sends
before it evicts a pod) stop a run after a step that every process agrees on, with a checkpoint
there; the same command continues it bit-identically. Without SLURM or Kubernetes: the signal sent by
hand, to one process, to one of two torchrun workers, and to the torchrun agent."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from test_train_faults import _children, _environment, _logged_steps, _same_weights, _train_args
from tiny_image_folder import write_image_folder
from xception.train.checkpoint import load_checkpoint, read_summary

STEPS = 24
COMMAND = [sys.executable, "-m", "xception.cli"]

pytestmark = pytest.mark.slow


def _signal_at(process: subprocess.Popen, run, step: int, pid: int | None = None) -> None:
    while _logged_steps(run) < step:
        assert process.poll() is None, process.communicate()[0][-3000:]
        time.sleep(0.02)
    os.kill(pid or process.pid, signal.SIGUSR1)


def _worker_ranks(agent: subprocess.Popen) -> dict[int, int]:
    """{rank: pid} of the agent's workers, once both have started (their environment names the rank)."""
    while True:
        assert agent.poll() is None, agent.communicate()[0][-3000:]
        ranks = {}
        for pid in _children(agent.pid):
            try:
                variables = dict(v.split("=", 1) for v in open(f"/proc/{pid}/environ").read().split("\0") if "=" in v)
            except OSError:  # gone already
                continue
            if "RANK" in variables:  # a forked child that has not exec'd the worker yet has none
                ranks[int(variables["RANK"])] = pid
        if len(ranks) == 2:
            return ranks
        time.sleep(0.02)


def test_sigusr1_stops_after_a_step_with_a_checkpoint_and_the_run_continues_bit_identical(tmp_path):
    data = write_image_folder(tmp_path / "data", per_class={"train": 24, "val": 10})
    straight, run = tmp_path / "straight", tmp_path / "run"
    subprocess.run([*COMMAND, *_train_args(data, straight, steps=STEPS)], env=_environment(), check=True,
                   capture_output=True)
    process = subprocess.Popen([*COMMAND, *_train_args(data, run, steps=STEPS)], env=_environment(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _signal_at(process, run, 5)
    output = process.communicate(timeout=300)[0]
    assert process.returncode == 0 and "by SIGUSR1" in output, output[-3000:]
    stopped = read_summary(run / "checkpoints" / "latest.pt")["step"]
    assert 5 <= stopped < STEPS and _logged_steps(run) == stopped  # no step after the one it saved
    assert f"stopped at step {stopped} of {STEPS}" in output and not (run / "final.json").exists()
    subprocess.run([*COMMAND, *_train_args(data, run, steps=STEPS)], env=_environment(), check=True,
                   capture_output=True)
    assert _same_weights(run / "weights.safetensors", straight / "weights.safetensors")
    attempts = json.loads((run / "final.json").read_text())["attempts"]
    assert attempts[0] == {**attempts[0], "to_step": stopped, "stopped_by": "SIGUSR1", "processes": 1}
    assert "stopped_by" not in attempts[1] and attempts[1]["from_step"] == stopped


def test_sigusr1_to_one_of_two_workers_stops_both_after_the_same_step(tmp_path):
    """The signal reaches rank 1 only: the flag is all-reduced after every step, so rank 0 stops after
    the same step (else it would wait in the next step's all-reduce for ever)."""
    data = write_image_folder(tmp_path / "data", per_class={"train": 24, "val": 10})
    run = tmp_path / "run"
    agent = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                              "-m", "xception.cli", *_train_args(data, run, steps=STEPS)],
                             env=_environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ranks = _worker_ranks(agent)
    _signal_at(agent, run, 5, pid=ranks[1])
    output = agent.communicate(timeout=300)[0]
    assert agent.returncode == 0, output[-3000:]
    summary = read_summary(run / "checkpoints" / "latest.pt")
    assert 5 <= summary["step"] < STEPS and _logged_steps(run) == summary["step"], output[-3000:]
    assert f"stopped at step {summary['step']} of {STEPS}" in output
    (attempt,) = load_checkpoint(run / "checkpoints" / "latest.pt")["progress"]["attempts"]
    assert attempt["stopped_by"] == "SIGUSR1" and attempt["processes"] == 2  # rank 0 names rank 1's signal


def test_sigterm_to_the_torchrun_agent_stops_both_workers_with_a_checkpoint_and_the_run_continues_bit_identical(
        tmp_path):
    """What Kubernetes does to a pod it evicts: SIGTERM to the container's first process (here the
    torchrun agent), SIGKILL after the grace period. The agent passes SIGTERM to its workers and
    waits 30 s; they agree on a step, save a checkpoint there and exit 143, and the same command
    (the pod started again) ends where an uninterrupted run ends, to the bit."""
    data = write_image_folder(tmp_path / "data", per_class={"train": 24, "val": 10})
    straight, run = tmp_path / "straight", tmp_path / "run"

    def torchrun(out) -> list[str]:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                "-m", "xception.cli", *_train_args(data, out, steps=STEPS)]

    subprocess.run(torchrun(straight), env=_environment(), check=True, capture_output=True)
    agent = subprocess.Popen(torchrun(run), env=_environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    _worker_ranks(agent)
    while _logged_steps(run) < 5:
        assert agent.poll() is None, agent.communicate()[0][-3000:]
        time.sleep(0.02)
    agent.send_signal(signal.SIGTERM)
    output = agent.communicate(timeout=120)[0]
    assert agent.returncode != 0, output[-3000:]  # the agent was told to terminate; its workers saved first
    summary = read_summary(run / "checkpoints" / "latest.pt")
    assert 5 <= summary["step"] < STEPS and _logged_steps(run) == summary["step"], output[-3000:]
    (attempt,) = load_checkpoint(run / "checkpoints" / "latest.pt")["progress"]["attempts"]
    assert attempt["stopped_by"] == "SIGTERM" and attempt["processes"] == 2
    subprocess.run(torchrun(run), env=_environment(), check=True, capture_output=True)
    assert _same_weights(run / "weights.safetensors", straight / "weights.safetensors")


def test_sigterm_to_a_single_process_exits_143_after_its_checkpoint(tmp_path):
    data = write_image_folder(tmp_path / "data", per_class={"train": 24, "val": 10})
    run = tmp_path / "run"
    process = subprocess.Popen([*COMMAND, *_train_args(data, run, steps=STEPS)], env=_environment(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while _logged_steps(run) < 5:
        assert process.poll() is None, process.communicate()[0][-3000:]
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=300)[0]
    assert process.returncode == 143 and "by SIGTERM" in output, output[-3000:]
    stopped = read_summary(run / "checkpoints" / "latest.pt")["step"]
    assert 5 <= stopped < STEPS and _logged_steps(run) == stopped and not (run / "final.json").exists()
