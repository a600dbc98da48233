"""Distributed equivalence: 2 gloo processes x 8 images == 1 process x 2 accumulated micro-batches of 8.

The data order depends only on the global batch (xception.data.loader), so both runs see the same
images in the same groups. Tolerance for the weights: 1e-5 absolute. DDP sums the two halves'
gradients with an all-reduce, accumulation sums them in .grad; fp32 addition in another order
differs by about one ulp (6e-8 relative), and 8 steps of momentum SGD amplify it little. A real
fault (a wrong shard, a missing average, a double step) moves the weights by more than 1e-3.
BatchNorm running statistics are estimates and are not compared: under DDP each process updates
them from its own micro-batch and rank 0's are kept; with accumulation they see both micro-batches.
"""

import socket

import pytest
import torch
import torch.multiprocessing as mp

from tiny_classification import tiny_datasets
from xception.data import DataConfig
from xception.data.loader import build_loader
from xception.distributed import close_distributed, init_distributed
from xception.models.trained import open_weights
from xception.tasks.classification import evaluate
from xception.train import TrainConfig, fit
from xception.train.checkpoint import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


def _config(out_dir, **changes) -> TrainConfig:
    return TrainConfig(
        data=DataConfig(source="fashion_mnist", path=None, image_size=16, in_channels=1),
        model="xception_small", model_overrides={"width": 0.125, "middle_repeats": 1},
        recipe="fashion_mnist_demo", steps=8, batch_size=16, precision="fp32", channels_last=False,
        compile=False, device="cpu", num_workers=0, progress=False, trackers=(), out_dir=str(out_dir),
        **changes,
    )


def _evaluate_weights(weights) -> dict:
    """Evaluate the weights on the tiny validation set with this process's exact shard."""
    context = init_distributed("cpu")
    model, _, _ = open_weights(weights)
    loader = build_loader(tiny_datasets().val, batch_size=4, training=False, rank=context.rank,
                          world_size=context.world_size, seed=0, num_workers=0, pin_memory=False)
    return evaluate(model, loader, device=context.device, multilabel=False)


def _worker(rank: int, port: int, out_dir: str, queue) -> None:
    import os

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE="2")
    try:
        result = fit(_config(out_dir), datasets=tiny_datasets())
        shared = _evaluate_weights(result.weights)  # the same weights file for both ranks
        # Numbers only: tensors (the calibration bins) would travel as file descriptors that die
        # with this process.
        queue.put((rank, _numbers(result.metrics), _numbers(shared)))
    except BaseException as error:  # report instead of leaving the parent waiting
        queue.put((rank, repr(error), None))
        raise
    finally:
        close_distributed()


def _numbers(metrics: dict) -> dict:
    return {key: value for key, value in metrics.items() if isinstance(value, int | float)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_distributed_two_processes_match_one_process_with_accumulation(tmp_path):
    context = mp.get_context("spawn")
    queue = context.SimpleQueue()
    port = _free_port()
    processes = [context.Process(target=_worker, args=(r, port, str(tmp_path / "ddp"), queue)) for r in range(2)]
    for p in processes:
        p.start()
    results = {rank: (metrics, shared) for rank, metrics, shared in (queue.get() for _ in processes)}
    assert all(shared is not None for _, shared in results.values()), results
    for p in processes:
        p.join(timeout=120)
        assert p.exitcode == 0

    single = fit(_config(tmp_path / "single", accumulation_steps=2), datasets=tiny_datasets())
    ddp_state, single_state = load_checkpoint(tmp_path / "ddp"), load_checkpoint(single.checkpoint)
    assert ddp_state["progress"]["step"] == single_state["progress"]["step"] == 8
    compared = 0
    for key, value in single_state["model"].items():
        if "running_" in key or "num_batches" in key:
            continue
        assert torch.allclose(ddp_state["model"][key], value, atol=1e-5, rtol=0), key
        compared += 1
    assert compared > 20
    # Every one of the 21 validation images counted exactly once on 2 processes, as on 1.
    ddp_metrics, shared = results[0]
    assert ddp_metrics["examples"] == single.metrics["examples"] == 21
    assert results[1][0] == ddp_metrics  # both ranks report the combined result
    alone = _evaluate_weights(tmp_path / "ddp" / "weights.safetensors")
    assert shared["examples"] == alone["examples"] == 21
    assert shared["correct1"] == alone["correct1"] and shared["correct5"] == alone["correct5"]
    assert shared["loss"] == pytest.approx(alone["loss"], rel=1e-6)


def _multilabel_datasets():
    """tiny_datasets with multi-hot targets (class k and, for odd k, class 0 too): the gathered-scores path."""
    import dataclasses

    from torch.utils.data import TensorDataset

    tiny = tiny_datasets()

    def multi_hot(split):
        images, labels = split.tensors
        targets = torch.nn.functional.one_hot(labels, 3).float()
        targets[labels % 2 == 1, 0] = 1.0
        return TensorDataset(images, targets)

    return dataclasses.replace(tiny, train=multi_hot(tiny.train), val=multi_hot(tiny.val), multilabel=True)


def _multilabel_rank(rank: int, out_dir: str) -> dict:
    config = _config(out_dir, recipe_overrides={"loss": "sigmoid"})
    result = fit(config, datasets=_multilabel_datasets())
    return result.metrics


@pytest.mark.slow
def test_distributed_multilabel_metrics_are_those_of_the_saved_weights(tmp_path):
    from spawn_ranks import run_ranks

    rank0, rank1 = run_ranks(_multilabel_rank, str(tmp_path))
    assert rank0 == rank1 and rank0["examples"] == 21
    model, _, _ = open_weights(tmp_path / "weights.safetensors")
    loader = build_loader(_multilabel_datasets().val, batch_size=4, training=False, rank=0, world_size=1, seed=0,
                          num_workers=0, pin_memory=False)
    alone = evaluate(model, loader, device=torch.device("cpu"), multilabel=True)
    assert alone["map"] == pytest.approx(rank0["map"], abs=1e-6)
    assert alone["loss"] == pytest.approx(rank0["loss"], rel=1e-6)
