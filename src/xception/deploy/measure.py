"""Engines timed side by side: interleaved rounds, the median per engine, a bounded time.

Every round runs every engine in turn on the same batch (the starting engine rotates from round to
round), so that a change of the machine's load during the measurement falls on all of them alike;
the median over the rounds of each engine's seconds per call is its figure. A call shorter than
`MIN_TIMED_S` is repeated within the round, so that the timer's resolution and Python's overhead
do not decide a one-image latency.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm import tqdm

from xception.deploy.engines import Engine

MIN_TIMED_S = 0.05  # each engine's share of a round is at least this long


@dataclass(frozen=True)
class Measurement:
    """One engine's seconds per call on a batch of `batch_size` images, one figure per round."""

    runtime: str
    precision: str
    engine: str  # the engine's settings in words
    batch_size: int
    seconds: tuple[float, ...]

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)

    @property
    def images_per_s(self) -> float:
        return self.batch_size / self.median_s

    def to_json(self) -> dict:
        return dict(runtime=self.runtime, precision=self.precision, engine=self.engine, batch_size=self.batch_size,
                    seconds=list(self.seconds))


def measure_engines(engines: Sequence[Engine], images: torch.Tensor, *, budget_s: float, min_rounds: int = 3,
                    max_rounds: int = 15, progress: bool = True, label: str = "measuring") -> list[Measurement]:
    """Time each of `engines` on `images` (N, C, H, W) in interleaved rounds: as many rounds as fit
    in `budget_s` after one untimed warm-up call each, at least `min_rounds` and at most
    `max_rounds`. A tqdm bar on stderr when it is a terminal."""
    if not engines:
        return []
    if min_rounds < 1 or max_rounds < min_rounds:
        raise ValueError(f"need 1 <= min_rounds <= max_rounds, got {min_rounds} and {max_rounds}")
    calls, round_s = [], 0.0
    for engine in engines:  # the warm-up call says how many calls fill MIN_TIMED_S
        start = time.perf_counter()
        engine(images)
        first_s = time.perf_counter() - start
        calls.append(max(1, math.ceil(MIN_TIMED_S / max(first_s, 1e-6))))
        round_s += calls[-1] * first_s
    rounds = max(min_rounds, min(max_rounds, int(budget_s / max(round_s, 1e-6))))
    seconds: list[list[float]] = [[] for _ in engines]
    bar = tqdm(total=rounds * len(engines), desc=label, unit="run", file=sys.stderr, disable=not sys.stderr.isatty(),
               leave=False)
    with bar:
        for round_index in range(rounds):
            for offset in range(len(engines)):
                index = (round_index + offset) % len(engines)
                start = time.perf_counter()
                for _ in range(calls[index]):
                    engines[index](images)
                seconds[index].append((time.perf_counter() - start) / calls[index])
                bar.update(1)
    return [Measurement(e.runtime, e.precision, e.description, len(images), tuple(s))
            for e, s in zip(engines, seconds, strict=True)]
