"""Side-by-side throughput benchmarks: this project's models against timm and torchvision.

- `peak`: the machine's measured convolution peak (GFLOP/s) per precision;
- `contenders`: the models compared, and how each is prepared for training or inference;
- `steps`: one training or inference step as a closure, in a given precision and layout;
- `memory`: the extra memory a step needs above the resting state;
- `suite`: the interleaved runner (median of repeats) that produces `BenchResult`;
- `report`: JSON and markdown renderings of a result.
"""

from xception.bench.suite import BenchConfig, BenchResult, BenchRow, run_benchmark

__all__ = ["BenchConfig", "BenchResult", "BenchRow", "run_benchmark"]
