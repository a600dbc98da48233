"""A/B of `xception.runtime.retain_freed_memory` on a training step, in alternating processes.

The setting is process-wide, so each arm runs in its own process: plain glibc malloc vs freed memory
kept for reuse; alternating pairs share the machine's load. Prints, per process, the median step
time over the timed steps, minor page faults and system CPU seconds per step.

    .venv/bin/python benchmarks/allocator_ab.py --pairs 3           # xception, bf16, 299 px, batch 16
    .venv/bin/python benchmarks/allocator_ab.py --model timm:legacy_xception --precision fp32
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time


def one_arm(arm: str, model: str, precision: str, batch_size: int, image_size: int, steps: int, threads: int) -> dict:
    import torch

    from xception.bench.contenders import build_model, parse_contender
    from xception.bench.steps import make_step
    from xception.runtime import retain_freed_memory

    torch.set_num_threads(threads)
    if arm == "retained":
        assert retain_freed_memory()
    step = make_step(build_model(parse_contender(model), num_classes=1000), training=True, batch_size=batch_size,
                     image_size=image_size, num_classes=1000, precision=precision, channels_last=True,
                     compile=False, device=torch.device("cpu"))
    step()
    step()
    before = resource.getrusage(resource.RUSAGE_SELF)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    after = resource.getrusage(resource.RUSAGE_SELF)
    return dict(arm=arm, step_s=statistics.median(times), faults_per_step=(after.ru_minflt - before.ru_minflt) / steps,
                system_s_per_step=(after.ru_stime - before.ru_stime) / steps)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="xception")
    parser.add_argument("--precision", default="bf16", choices=("fp32", "bf16"))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=299)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--arm", help=argparse.SUPPRESS)  # internal: run one arm and print its JSON
    args = parser.parse_args()
    if args.arm:
        print(json.dumps(one_arm(args.arm, args.model, args.precision, args.batch_size, args.image_size,
                                 args.steps, args.threads)))
        return 0
    results = {"plain": [], "retained": []}
    for pair in range(args.pairs):
        for arm in ("plain", "retained") if pair % 2 == 0 else ("retained", "plain"):
            out = subprocess.run([sys.executable, __file__, "--arm", arm, *sys.argv[1:]], check=True,
                                 capture_output=True, text=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
            results[arm].append(row)
            print(f"pair {pair + 1} {arm:8s}: step {row['step_s']:.2f} s, {row['faults_per_step']:,.0f} minor faults "
                  f"and {row['system_s_per_step']:.2f} s system time per step", flush=True)
    plain = statistics.median(r["step_s"] for r in results["plain"])
    retained = statistics.median(r["step_s"] for r in results["retained"])
    print(f"median step: plain {plain:.2f} s, retained {retained:.2f} s: {plain / retained:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
