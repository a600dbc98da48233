"""Two torchrun agents on this machine, each standing for a node (`--nnodes 2 --nproc-per-node 1`, c10d
rendezvous on 127.0.0.1, gloo), train `xception_small` together: the command of docs/clusters.md with
only the endpoint and the counts changed. A node's agent and worker killed with `kill -9` and started
again rejoin the job; the rendezvous host killed ends the job, and the same command on both nodes
(what a scheduler's restart does) continues it. Each ends bit-identical to an uninterrupted run."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from itertools import pairwise
from pathlib import Path

import pytest

from cluster_docs import documented_launch
from spawn_ranks import free_port
from test_train_faults import _children, _environment, _logged_steps, _same_weights, _train_args
from tiny_image_folder import write_image_folder
from xception.distributed import shared_store_warning

STEPS = 40
BIN = Path(sys.executable).parent  # torchrun and xception, installed beside this Python

NEEDS_PROC = pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the agents' workers through /proc")


def node_command(port: int, nnodes: str, *train_args: str) -> list[str]:
    """One node's launch: docs/clusters.md's command with our endpoint, counts and id, and `train_args`
    (which begin with "train") in place of its training arguments."""
    options = documented_launch().with_place(nnodes=nnodes, nproc_per_node="1", rdzv_endpoint=f"127.0.0.1:{port}",
                                             rdzv_id="xception-test")
    return [str(BIN / "torchrun"), *options, str(BIN / "xception"), *train_args]


def node_environment() -> dict[str, str]:
    """The documented command's environment (a fresh store for every rendezvous round)."""
    return {**_environment(), **documented_launch().environment}


def test_documented_command_launches_the_nodes():
    """What the tests below run is the page's command: its environment and every torchrun option
    but the endpoint, the counts and the id."""
    launch = documented_launch()
    assert launch.environment == {"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
    command = node_command(29400, "2", "train")
    assert command[1:-2] == launch.with_place(nnodes="2", nproc_per_node="1", rdzv_endpoint="127.0.0.1:29400",
                                              rdzv_id="xception-test")
    assert launch.option("--rdzv-backend") == "c10d" and launch.option("--max-restarts") == "3"
    assert launch.option("--nnodes") == "8" and command[command.index("--nnodes") + 1] == "2"


def test_a_multi_node_job_sharing_its_rendezvous_store_is_warned():
    """Without the variable a node cannot rejoin: rank 0 says so, naming the variable."""
    shared = {"GROUP_WORLD_SIZE": "2", "TORCHELASTIC_USE_AGENT_STORE": "True"}
    assert "TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1" in shared_store_warning(shared)
    assert shared_store_warning({**shared, "TORCHELASTIC_USE_AGENT_STORE": "False"}) is None  # the variable set
    assert shared_store_warning({**shared, "GROUP_WORLD_SIZE": "1"}) is None  # one node: restarts are torchrun's own


class Nodes:
    """The agents started by one test, each in its own session (so that a kill takes a node whole),
    all of them killed at the end, whatever happened."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir, self.agents = log_dir, []

    def start(self, command: list[str]) -> subprocess.Popen:
        log = open(self.log_dir / f"node-{len(self.agents)}.log", "w")
        agent = subprocess.Popen(command, env=node_environment(), stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        log.close()
        self.agents.append(agent)
        return agent

    def start_host(self, command: list[str], port: int) -> subprocess.Popen:
        """Node 0, the rendezvous host: started first and waited for until its c10d store listens on
        `port`. On a cluster the endpoint's hostname decides which node hosts the store; here every
        agent is on 127.0.0.1 and the first one to bind the port does."""
        agent = self.start(command)
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return agent
            except OSError:
                assert agent.poll() is None and time.monotonic() < deadline, self.logs()
                time.sleep(0.1)

    def kill(self, agent: subprocess.Popen) -> None:
        """`kill -9` of a node: its agent and every process below it (a worker outlives its agent)."""
        doomed, todo = [], [agent.pid]
        while todo:
            pid = todo.pop()
            doomed.append(pid)
            todo.extend(_children(pid))
        for pid in doomed:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        agent.wait()

    def wait(self, *agents: subprocess.Popen, timeout: float = 300) -> list[int]:
        deadline = time.monotonic() + timeout
        for agent in agents:
            agent.wait(timeout=max(1.0, deadline - time.monotonic()))
        return [agent.returncode for agent in agents]

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n" + p.read_text()[-2500:] for p in sorted(self.log_dir.glob("node-*.log")))

    def close(self) -> None:
        for agent in self.agents:
            if agent.poll() is None:
                self.kill(agent)


@pytest.fixture
def nodes(tmp_path):
    (tmp_path / "logs").mkdir()
    started = Nodes(tmp_path / "logs")
    yield started
    started.close()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("cluster") / "data", per_class={"train": 24, "val": 10})


@pytest.fixture(scope="module")
def two_nodes_straight(data, tmp_path_factory):
    """An uninterrupted run on two nodes: the reference of every test here."""
    root = tmp_path_factory.mktemp("straight")
    (root / "logs").mkdir()
    nodes, port, out = Nodes(root / "logs"), free_port(), root / "run"
    try:
        agents = [nodes.start(node_command(port, "2", *_train_args(data, out, steps=STEPS))) for _ in range(2)]
        assert nodes.wait(*agents) == [0, 0], nodes.logs()
    finally:
        nodes.close()
    return out


def _wait_for_step(run: Path, step: int, *alive: subprocess.Popen, nodes: Nodes, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while _logged_steps(run) < step:
        assert all(a.poll() is None for a in alive) and time.monotonic() < deadline, nodes.logs()
        time.sleep(0.05)


@pytest.mark.slow
@NEEDS_PROC
def test_two_nodes_equal_one_node_with_the_same_global_batch(two_nodes_straight, data, tmp_path):
    """2 nodes x 1 process against 1 node x 2 processes (`--standalone`), global batch 8 in both:
    the same ranks compute the same sums, so the averaged weights and the metrics are equal to the bit."""
    out = tmp_path / "one_node"
    subprocess.run([str(BIN / "torchrun"), "--standalone", "--nproc-per-node", "2", "--no-python",
                    str(BIN / "xception"), *_train_args(data, out, steps=STEPS)],
                   env=node_environment(), check=True, capture_output=True, timeout=300)
    assert _same_weights(two_nodes_straight / "weights.safetensors", out / "weights.safetensors")
    two, one = (json.loads((run / "final.json").read_text()) for run in (two_nodes_straight, out))
    assert two["metrics"] == one["metrics"] and two["total_steps"] == one["total_steps"] == STEPS
    environments = [json.loads((run / "environment.json").read_text()) for run in (two_nodes_straight, out)]
    assert [e["world_size"] for e in environments] == [2, 2]


@pytest.mark.slow
@NEEDS_PROC
def test_a_node_killed_rejoins_and_the_host_killed_restarts_bit_identical(two_nodes_straight, data, nodes, tmp_path):
    """Node 1 (agent and worker) killed at step 10 and started again: the surviving agent restarts
    its worker and both continue from the last checkpoint. Then node 0, the rendezvous host, killed at
    step 25: its store goes with it and node 1 gives up; the same command on both nodes continues."""
    port, run = free_port(), tmp_path / "run"
    command = node_command(port, "2", *_train_args(data, run, steps=STEPS))
    node0 = nodes.start_host(command, port)
    node1 = nodes.start(command)
    _wait_for_step(run, 10, node0, node1, nodes=nodes)
    nodes.kill(node1)
    node1 = nodes.start(command)  # the node comes back
    _wait_for_step(run, 25, node0, nodes=nodes)
    nodes.kill(node0)
    assert nodes.wait(node1, timeout=120) != [0], nodes.logs()  # no rendezvous without its host
    assert not (run / "final.json").exists()
    again = [nodes.start_host(command, port), nodes.start(command)]  # the whole job again, as a scheduler restarts it
    assert nodes.wait(*again) == [0, 0], nodes.logs()
    assert _same_weights(run / "weights.safetensors", two_nodes_straight / "weights.safetensors")
    final = json.loads((run / "final.json").read_text())
    assert len(final["attempts"]) == 3, final["attempts"]
    steps = [(a["from_step"], a["to_step"]) for a in final["attempts"]]
    assert steps[0][0] == 0 and steps[-1][1] == STEPS and all(a[1] == b[0] for a, b in pairwise(steps))
    assert steps[1][0] >= 9 and steps[2][0] >= 24, steps  # each began at the checkpoint its kill left
    config = json.loads((run / "config.json").read_text())
    assert config["attempts"] == final["attempts"][:-1]  # the resumed run records the interruptions before it


@pytest.mark.slow
@NEEDS_PROC
def test_elastic_job_goes_on_with_one_node_keeping_the_global_batch(two_nodes_straight, data, nodes, tmp_path):
    """`--nnodes 1:2`: node 1 killed for good at step 10, node 0 goes on alone. The rule of
    docs/clusters.md: the same global batch (each process computes twice as many images), so the
    same samples and learning rate at every step; the attempts record the processes and the micro-batch."""
    port, run = free_port(), tmp_path / "run"
    # last_call_timeout: how long a round waits for more than the minimum of nodes (30 s by default).
    command = node_command(port, "1:2", *_train_args(data, run, steps=STEPS))
    command[1:1] = ["--rdzv-conf", "last_call_timeout=2"]
    node0 = nodes.start_host(command, port)
    node1 = nodes.start(command)
    _wait_for_step(run, 10, node0, node1, nodes=nodes)
    nodes.kill(node1)
    assert nodes.wait(node0) == [0], nodes.logs()
    final = json.loads((run / "final.json").read_text())
    assert [(a["processes"], a["micro_batch"]) for a in final["attempts"]] == [(2, 4), (1, 8)], final["attempts"]
    assert final["attempts"][0]["to_step"] == final["attempts"][1]["from_step"] >= 9
    rows, straight = ([json.loads(line) for line in (r / "metrics.jsonl").read_text().splitlines()]
                      for r in (run, two_nodes_straight))
    steps = [[(r["step"], r["samples"], r["lr"]) for r in rs if r["kind"] == "step"] for rs in (rows, straight)]
    assert steps[0] == steps[1] and len(steps[0]) == STEPS
    environment = json.loads((run / "environment.json").read_text())
    assert environment["world_size"] == 1  # written by the attempt that finished


@pytest.fixture
def etcd_endpoint(tmp_path):
    """Debian's etcd-server on free ports, with the v2 API that torch's etcd-v2 rendezvous uses."""
    if not shutil.which("etcd"):
        pytest.skip("etcd is not installed (Debian's etcd-server: make system-packages installs it as root)")
    pytest.importorskip("etcd", reason="torch's etcd-v2 rendezvous needs the python-etcd client (the test extra)")
    client, peer = free_port(), free_port()
    log = open(tmp_path / "etcd.log", "w")
    server = subprocess.Popen(
        ["etcd", "--name", "test", "--data-dir", str(tmp_path / "etcd"), "--enable-v2",
         "--listen-client-urls", f"http://127.0.0.1:{client}", "--advertise-client-urls", f"http://127.0.0.1:{client}",
         "--listen-peer-urls", f"http://127.0.0.1:{peer}", "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
         "--initial-cluster", f"test=http://127.0.0.1:{peer}"], stdout=log, stderr=subprocess.STDOUT)
    log.close()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{client}/v2/keys/", timeout=1).read()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "etcd.log").read_text()
                time.sleep(0.2)
        yield f"127.0.0.1:{client}"
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
@NEEDS_PROC
def test_with_etcd_the_first_node_killed_rejoins_bit_identical(two_nodes_straight, data, nodes, etcd_endpoint,
                                                                tmp_path):
    """With the rendezvous in etcd (`--rdzv-backend etcd-v2`) no node is special: node 0, the one
    that holds c10d's store (above, its death ends the job), killed at step 10 and started again,
    rejoins; the run ends bit-identical."""
    run = tmp_path / "run"
    command = node_command(0, "2", *_train_args(data, run, steps=STEPS))
    command[command.index("--rdzv-backend") + 1] = "etcd-v2"
    command[command.index("--rdzv-endpoint") + 1] = etcd_endpoint
    node0 = nodes.start(command)
    node1 = nodes.start(command)
    _wait_for_step(run, 10, node0, node1, nodes=nodes)
    nodes.kill(node0)
    node0 = nodes.start(command)
    assert nodes.wait(node0, node1) == [0, 0], nodes.logs()
    assert _same_weights(run / "weights.safetensors", two_nodes_straight / "weights.safetensors")
    attempts = json.loads((run / "final.json").read_text())["attempts"]
    assert len(attempts) == 2 and attempts[1]["from_step"] >= 9, attempts
