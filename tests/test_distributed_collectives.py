"""Every collective a training run makes works on the process group that a GPU run creates.

There is no GPU here, so NCCL's restriction is simulated: a backend registered for the "cuda"
device only (a gloo group underneath), which refuses a CPU tensor with NCCL's own error ("No
backend type associated with device type cpu"). `process_group_backend` names the backend of a
GPU run; the test builds that group with the simulated NCCL in NCCL's place and runs the run's
CPU-side collectives through it: the logged training loss, the RNG states gathered into a
checkpoint, rows gathered for multi-label evaluation, a barrier, a whole evaluation. A group of
NCCL alone (what a GPU run created before) fails the first of them, which the control asserts.
"""

import pytest
import torch
import torch.distributed as dist

from spawn_ranks import run_ranks
from tiny_classification import tiny_datasets
from xception.data.loader import build_loader
from xception.distributed import (
    all_gather_objects,
    all_gather_rows,
    all_reduce_sum,
    barrier,
    init_distributed,
    process_group_backend,
)
from xception.models import create_model
from xception.tasks.classification import evaluate
from xception.train.checkpoint import capture_rng_state

SIMULATED_NCCL = "cuda_only"


def _cuda_only_backend(store, rank, world_size, timeout):
    return dist.ProcessGroupGloo(store, rank, world_size, timeout)


def _join(backend: str) -> None:
    dist.Backend.register_backend(SIMULATED_NCCL, _cuda_only_backend, devices=["cuda"])
    dist.init_process_group(backend=backend.replace("nccl", SIMULATED_NCCL))


def _cpu_collectives(rank: int) -> dict:
    _join(process_group_backend(torch.device("cuda", 0)))
    context = init_distributed("cpu")  # joins nothing: the group exists
    loss = float(all_reduce_sum(torch.tensor(0.5 + rank)))
    rows = all_gather_rows(torch.full((rank + 1, 2), float(rank)))
    states = all_gather_objects(capture_rng_state())
    barrier()
    torch.manual_seed(0)
    model = create_model("xception_small", num_classes=3, in_channels=1, width=0.125, middle_repeats=1)
    loader = build_loader(tiny_datasets().val, batch_size=4, training=False, rank=context.rank,
                          world_size=context.world_size, seed=0, num_workers=0, pin_memory=False)
    metrics = evaluate(model, loader, device=context.device, multilabel=False)
    return {"loss": loss, "rows": rows.tolist(), "ranks": len(states), "examples": metrics["examples"]}


def _nccl_alone(rank: int) -> str:
    _join("nccl")
    try:
        all_reduce_sum(torch.tensor(1.0))
    except RuntimeError as error:
        return str(error)
    return "no error"


def test_process_group_backend_is_gloo_on_cpu():
    assert process_group_backend(torch.device("cpu")) == "gloo"


@pytest.mark.slow
def test_cpu_collectives_work_on_the_group_of_a_gpu_run():
    results = run_ranks(_cpu_collectives)
    for result in results:
        assert result["loss"] == 2.0  # 0.5 + 1.5
        assert result["rows"] == [[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]]
        assert result["ranks"] == 2
        assert result["examples"] == 21  # every validation image once over the two ranks


@pytest.mark.slow
def test_a_group_of_nccl_alone_refuses_cpu_tensors():
    """The control: the simulation refuses what NCCL refuses, so the test above can fail."""
    for message in run_ranks(_nccl_alone):
        assert "No backend type associated with device type cpu" in message
