"""Dynamic micro-batching: requests wait at most a set delay to form a batch of at most a set number
of images, which one inference thread runs; the queue is bounded in images.

Written here rather than taken from a library: the serving libraries that batch (MLServer's adaptive
batching, LitServe, Ray Serve's @serve.batch) keep an unbounded queue or none of their own, and the
bound, with a 503 and a Retry-After past it, is the point. It is an asyncio loop on the server's event
loop and one worker thread, so the runtimes (which are not all thread-safe) are only ever called from
that one thread.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch


class QueueFullError(Exception):
    """The queue holds `max_queue` images already; `retry_after_s` estimates when it will have room."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"the server's queue is full; retry after {retry_after_s} s")
        self.retry_after_s = retry_after_s


@dataclass
class _Waiting:
    images: torch.Tensor  # (n, C, H, W)
    answer: asyncio.Future


class MicroBatcher:
    """`submit` (N, C, H, W) inputs, get `run`'s (N, ...) outputs for them, computed in a batch with
    other requests' inputs. `on_batch(size)` and `on_depth(images waiting)` report to the metrics."""

    def __init__(self, run: Callable[[torch.Tensor], torch.Tensor], *, max_batch_size: int, max_delay_s: float,
                 max_queue: int, on_batch: Callable[[int], None] = lambda size: None,
                 on_depth: Callable[[int], None] = lambda depth: None) -> None:
        self.run, self.max_batch_size, self.max_delay_s, self.max_queue = run, max_batch_size, max_delay_s, max_queue
        self.on_batch, self.on_depth = on_batch, on_depth
        self._waiting: deque[_Waiting] = deque()
        self._queued = 0  # images in `_waiting`
        self._batch_seconds = 0.0  # the last batch's inference time, for Retry-After
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closing = False

    async def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self._worker = asyncio.create_task(self._serve(), name="micro-batcher")

    async def close(self) -> None:
        """Run what is queued, then stop the worker and its thread."""
        self._closing = True
        if self._wakeup is not None:
            self._wakeup.set()
        if self._worker is not None:
            await self._worker
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    @property
    def queued(self) -> int:
        return self._queued

    async def submit(self, images: torch.Tensor) -> torch.Tensor:
        """The outputs for `images` (n, C, H, W), 1 <= n <= max_batch_size; QueueFullError when
        they do not fit in the queue, RuntimeError once the batcher is closing."""
        if not 1 <= len(images) <= self.max_batch_size:
            raise ValueError(f"a request holds 1 to {self.max_batch_size} images, got {len(images)}")
        if self._worker is None or self._closing:
            raise RuntimeError("the batcher is not running")
        if self._queued + len(images) > self.max_queue:
            raise QueueFullError(self.retry_after())
        waiting = _Waiting(images, asyncio.get_running_loop().create_future())
        self._waiting.append(waiting)
        self._queued += len(images)
        self.on_depth(self._queued)
        self._wakeup.set()
        return await waiting.answer

    def retry_after(self) -> int:
        """Seconds until the queue has drained at the last batch's pace (at least 1)."""
        batches = math.ceil(self._queued / self.max_batch_size)
        return max(1, math.ceil(batches * self._batch_seconds))

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._waiting:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
            deadline = loop.time() + self.max_delay_s
            while self._queued < self.max_batch_size and not self._closing:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                except asyncio.TimeoutError:
                    break
            batch = self._take_batch()
            if batch:
                await self._run_batch(loop, batch)

    def _take_batch(self) -> list[_Waiting]:
        """Whole requests from the front of the queue, up to max_batch_size images; those whose client
        has gone (their future cancelled) are dropped unrun."""
        batch: list[_Waiting] = []
        size = 0
        while self._waiting and size + len(self._waiting[0].images) <= self.max_batch_size:
            waiting = self._waiting.popleft()
            self._queued -= len(waiting.images)
            if not waiting.answer.done():
                batch.append(waiting)
                size += len(waiting.images)
        self.on_depth(self._queued)
        return batch

    async def _run_batch(self, loop: asyncio.AbstractEventLoop, batch: list[_Waiting]) -> None:
        images = torch.cat([w.images for w in batch])
        self.on_batch(len(images))
        start = time.perf_counter()
        try:
            outputs = await loop.run_in_executor(self._executor, self.run, images)
        except Exception as error:  # a bug in the runtime: every request of the batch gets it (HTTP 500)
            for waiting in batch:
                if not waiting.answer.done():
                    waiting.answer.set_exception(error)
            return
        finally:
            self._batch_seconds = time.perf_counter() - start
        for waiting, output in zip(batch, outputs.split([len(w.images) for w in batch]), strict=True):
            if not waiting.answer.done():
                waiting.answer.set_result(output)
