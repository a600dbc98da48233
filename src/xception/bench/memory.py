"""Peak memory of one step above the resting state (model, optimizer state and inputs in place).

CUDA: the caching allocator's peak. CPU: the running sum of every allocation and free the
profiler records during the step (`profile_memory=True`, each op's self memory in time order),
whose maximum is the peak of live tensor memory; the process' resident set is no measure of it,
since freed blocks stay in malloc's pools. Both count only what the step adds: activations saved
for backward, gradients, temporaries that outlive an operator.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch
from torch.profiler import ProfilerActivity, profile


def step_peak_memory(step: Callable[[], None], device: torch.device) -> int | None:
    """Bytes the step needs above what was allocated before it; None where it cannot be measured."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    if device.type != "cpu":
        return None
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = sorted(prof.events(), key=lambda event: event.time_range.start)
    return max(0, *itertools.accumulate(event.self_cpu_memory_usage for event in events))
