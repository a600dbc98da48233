"""Run a function on N local processes joined into one gloo process group, as torchrun would, and
collect what each returns (or the error it raised, so that the test fails instead of hanging)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

import torch
import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world_size: int, port: int, target: Callable, args: tuple, queue) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world_size))
    from xception.distributed import close_distributed

    try:
        queue.put((rank, "ok", target(rank, *args)))
    except BaseException as error:  # report instead of leaving the parent waiting
        queue.put((rank, "error", repr(error)))
        raise
    finally:
        close_distributed()


def run_ranks(target: Callable, *args, world_size: int = 2, timeout: float = 300) -> list:
    """`target(rank, *args)` on `world_size` spawned processes; their return values in rank order.

    `target` must be importable (a module-level function of a test module).
    """
    context = mp.get_context("spawn")
    queue = context.SimpleQueue()
    port = free_port()
    processes = [context.Process(target=_rank_main, args=(r, world_size, port, target, args, queue))
                 for r in range(world_size)]
    for p in processes:
        p.start()
    results = dict((rank, (status, value)) for rank, status, value in (queue.get() for _ in processes))
    for p in processes:
        p.join(timeout=timeout)
    errors = {rank: value for rank, (status, value) in results.items() if status != "ok"}
    assert not errors, errors
    assert all(p.exitcode == 0 for p in processes), [p.exitcode for p in processes]
    return [results[r][1] for r in range(world_size)]
