"""Synchronous data parallelism on torch.distributed, launched by `torchrun` (section 4.2: the paper
trained ImageNet with synchronous gradient descent on 60 GPUs).

`torchrun` sets RANK, WORLD_SIZE and LOCAL_RANK; without them this is a single process. On CPUs
the process group is gloo; on GPUs it has two backends, NCCL for CUDA tensors and gloo for CPU ones
(`process_group_backend`), so that every collective works whatever device its tensors are on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist

from xception.errors import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands: its rank among `world_size` processes and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, writes the run directory and saves checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str | None) -> DistributedContext:
    """Join the process group that torchrun describes (if any) and pick this process's device.

    `device` None means this rank's GPU when CUDA is available, else the CPU. Requesting "cuda"
    without a GPU fails here, before any work.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = pick_device(device, local_rank=local_rank)
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    if world_size > 1 and not dist.is_initialized():
        backend = process_group_backend(resolved)
        _join_process_group(backend, device_id=resolved if resolved.type == "cuda" else None)
        log.info("rank %d of %d joined the %s process group", rank, world_size, backend)
    return DistributedContext(rank=rank, world_size=world_size, local_rank=local_rank, device=resolved)


def pick_device(device: str | None, *, local_rank: int = 0) -> torch.device:
    """`device` ("cpu", "cuda", "cuda:N"; None: the GPU `local_rank` when CUDA is available, else the
    CPU). Asking for CUDA without a GPU, or for an unknown device, fails with the way out."""
    kind = device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(kind)
    except RuntimeError:
        raise UserError(f"unknown device {kind!r}; use cpu, cuda or cuda:N") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"device {kind!r} requested but CUDA is not available; use --device cpu")
        return torch.device("cuda", local_rank) if resolved.index is None else resolved
    return resolved


def _join_process_group(backend: str, *, device_id: torch.device | None) -> None:
    """`init_process_group` from torchrun's environment, with each torchrun attempt's keys apart.

    After `torchrun --max-restarts` relaunches the workers, the store can still hold the addresses
    that the killed attempt's ranks published: a restarted rank 0 read them and failed ("Gloo
    connectFullMesh failed ... Connection refused") or waited for peers that no longer exist. Under
    a prefix named by TORCHELASTIC_RESTART_COUNT, which every worker of one attempt shares (with a
    fixed number of nodes), a rank only ever meets the ranks of its own attempt.

    Each node's agent counts its own restarts, so a node started again after a kill counts from 0
    while the others count on: their workers would wait under different prefixes. Multi-node
    launches therefore set TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 (docs/clusters.md), which also avoids
    torch's own hang there; then rank 0 hosts a new store on a new port for every round, no old key
    can be read and no prefix is needed (TORCHELASTIC_USE_AGENT_STORE is "False").
    """
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT")
    if attempt is None or os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        dist.init_process_group(backend=backend, device_id=device_id)
        return
    warning = shared_store_warning(os.environ)
    if warning and os.environ.get("RANK") == "0":
        log.warning(warning)
    store, rank, world_size = next(dist.rendezvous("env://"))
    store = dist.PrefixStore(f"xception/attempt-{attempt}", store)
    dist.init_process_group(backend=backend, store=store, rank=rank, world_size=world_size, device_id=device_id)


def shared_store_warning(environ: Mapping[str, str]) -> str | None:
    """What to tell a multi-node job whose torchrun shares its rendezvous store with the training
    processes (no TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1): a node killed there cannot come back
    (measured in docs/clusters.md). None for one node, or when every round has a store of its own."""
    if int(environ.get("GROUP_WORLD_SIZE", "1")) > 1 and environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
        return ("torchrun shares its rendezvous store with the training processes: a node that fails cannot "
                "rejoin this job (its agent times out with DistStoreError); set TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 "
                "where torchrun starts on every node (docs/clusters.md)")
    return None


def process_group_backend(device: torch.device) -> str:
    """The torch.distributed backend for training on `device`: "gloo" on a CPU, "cpu:gloo,cuda:nccl" on a GPU.

    NCCL serves CUDA tensors only ("No backend type associated with device type cpu"), and a run
    has CPU-side collectives besides the gradients: the training loss logged at each evaluation,
    every rank's RNG states gathered into a checkpoint (all_gather_object pickles to CPU bytes
    when the group has a CPU backend). Rather than moving each of those to the GPU (and finding
    the next one in production), the group routes CPU tensors to gloo and CUDA tensors to NCCL.
    Gradients, evaluation counts and BatchNorm buffers stay on the GPU and go through NCCL.
    """
    return "cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo"


def close_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of `tensor` over all processes (itself when not distributed)."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        tensor = tensor.clone()
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_rows(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate every process's rows (dim 0, any count per process) in rank order."""
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return tensor
    world = dist.get_world_size()
    count = torch.tensor([tensor.shape[0]], device=tensor.device)
    counts = [torch.zeros_like(count) for _ in range(world)]
    dist.all_gather(counts, count)
    longest = int(max(c.item() for c in counts))
    padded = tensor.new_zeros((longest, *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    gathered = [torch.zeros_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded)
    return torch.cat([g[: int(c.item())] for g, c in zip(gathered, counts, strict=True)])


def all_gather_objects(value: object) -> list[object]:
    """Every process's `value`, in rank order (a one-element list when not distributed)."""
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return [value]
    out: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return out


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Give every process rank 0's buffers of `module` (BatchNorm running statistics), in place."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()
