"""Run the Fashion-MNIST demo or long preset with TrainConfig fields replaced, and print the result.

    python benchmarks/fashion_mnist_variants.py demo|long RUN_DIR cpu|cuda ['{"epochs": 6, "batch_size": 256}']

A "data" entry replaces fields of the DataConfig: '{"data": {"erase_probability": 0.5}}'.

The figures in docs/training.md ("Measured") came from this script, pinned to two cores with
`taskset -c 0,1` for the CPU rows; `data/fashion-mnist` or the usual lookup order finds the data.
"""

import dataclasses
import json
import logging
import sys
import time

from xception.data.fashion_mnist import obtain_fashion_mnist
from xception.train import fit
from xception.train.demo import demo_config

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
kind, out_dir, device = sys.argv[1:4]
changes = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
data = "data/fashion-mnist" if __import__("pathlib").Path("data/fashion-mnist").is_dir() else None
config = demo_config(data_path=str(obtain_fashion_mnist(data)), out_dir=out_dir, long=kind == "long",
                     device=device, progress=False)
data_changes = changes.pop("data", {})
config = dataclasses.replace(config, data=dataclasses.replace(config.data, **data_changes), **changes)
changes["data"] = data_changes
start = time.time()
result = fit(config)
print("RESULT", kind, changes, result.metrics, result.steps, f"{time.time() - start:.1f} s", flush=True)
