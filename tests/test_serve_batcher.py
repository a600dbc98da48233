"""The micro-batcher on its own: batches by size and delay, answers each request with its own rows,
refuses past its bound, and runs what is queued when it closes."""

from __future__ import annotations

import asyncio
import threading

import pytest
import torch

from xception.serve.batcher import MicroBatcher, QueueFullError


def doubling(batches: list[int], threads: set[str]):
    def run(images: torch.Tensor) -> torch.Tensor:
        batches.append(len(images))
        threads.add(threading.current_thread().name)
        return images * 2

    return run


def test_micro_batcher_groups_requests_up_to_the_batch_size_and_answers_each_its_rows():
    batches, threads = [], set()

    async def scenario():
        batcher = MicroBatcher(doubling(batches, threads), max_batch_size=4, max_delay_s=0.2, max_queue=16)
        await batcher.start()
        inputs = [torch.full((n, 1), float(i)) for i, n in enumerate((1, 2, 1, 3))]
        outputs = await asyncio.gather(*(batcher.submit(x) for x in inputs))
        await batcher.close()
        return inputs, outputs

    inputs, outputs = asyncio.run(scenario())
    for x, y in zip(inputs, outputs, strict=True):
        torch.testing.assert_close(y, x * 2)
    assert batches == [4, 3]  # whole requests: 1 + 2 + 1, then 3
    assert len(threads) == 1 and threads.pop().startswith("inference")


def test_micro_batcher_runs_a_lone_request_after_the_delay():
    batches = []

    async def scenario():
        batcher = MicroBatcher(doubling(batches, set()), max_batch_size=8, max_delay_s=0.05, max_queue=8)
        await batcher.start()
        loop = asyncio.get_running_loop()
        start = loop.time()
        await batcher.submit(torch.ones(1, 1))
        waited = loop.time() - start
        await batcher.close()
        return waited

    waited = asyncio.run(scenario())
    assert batches == [1]
    assert 0.04 <= waited < 1.0


def test_micro_batcher_refuses_past_its_queue_bound_and_answers_the_accepted_on_close():
    """While the inference thread is busy (held by a gate), the queue fills to its bound of 3 images."""
    batches, gate = [], threading.Event()

    def held(images: torch.Tensor) -> torch.Tensor:
        gate.wait(timeout=5)
        batches.append(len(images))
        return images * 2

    async def scenario():
        batcher = MicroBatcher(held, max_batch_size=2, max_delay_s=10.0, max_queue=3)
        await batcher.start()
        accepted = [asyncio.create_task(batcher.submit(torch.ones(2, 1)))]  # a full batch: runs, held
        await asyncio.sleep(0.05)
        accepted += [asyncio.create_task(batcher.submit(torch.ones(n, 1))) for n in (2, 1)]  # queued: 3
        await asyncio.sleep(0.05)
        assert batcher.queued == 3
        with pytest.raises(QueueFullError) as refused:
            await batcher.submit(torch.ones(1, 1))
        assert refused.value.retry_after_s >= 1
        gate.set()
        await batcher.close()  # does not wait out the 10 s delay: it runs what is queued
        return [await task for task in accepted]

    outputs = asyncio.run(asyncio.wait_for(scenario(), timeout=10))
    assert [len(y) for y in outputs] == [2, 2, 1]
    assert batches == [2, 2, 1]
