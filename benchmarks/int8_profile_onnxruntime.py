"""Where onnxruntime's int8 spends its time, beside OpenVINO's bf16: the two fastest engines of
`benchmarks/deploy.py` on the same `xception` (random weights, BatchNorm statistics from a
batch), 299 px, batch 16, kernel time grouped by kind of layer.

Issue 22 asks why int8 stays below VNNI's ~2x of bf16. onnxruntime's profiler (`enable_profiling`)
and OpenVINO's `PERF_COUNT` both report each node's time; convolutions are split into pointwise
(1x1), depthwise (grouped) and full ones, the rest are kept by operator name. Writes OUT.md and
OUT.json. Usage (from the repository root, a quiet machine):

    .venv/bin/python benchmarks/int8_profile_onnxruntime.py [--out benchmarks/results/int8_profile_onnxruntime]
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import shlex
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from deploy import benchmark_model  # noqa: E402  (the deployment benchmark's model, so the figures compare)

KINDS = ("pointwise", "depthwise", "full conv")


def conv_kind(group: int, kernel: list[int]) -> str:
    return "depthwise" if group > 1 else ("pointwise" if list(kernel) == [1, 1] else "full conv")


def onnxruntime_profile(path: Path, images: torch.Tensor, *, threads: int, runs: int) -> dict[str, float]:
    """ms per forward of onnxruntime's session of `path`, by kind of node (profiled after a warm-up)."""
    import onnx
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.enable_profiling = True
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    optimized = path.with_name("optimized.onnx")
    options.optimized_model_filepath = str(optimized)  # the graph onnxruntime runs, to name the nodes
    options.profile_file_prefix = str(path.with_name("onnxruntime_profile"))  # beside the model, not in the cwd
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: images.numpy()}
    for _ in range(runs + 1):
        session.run(None, feed)
    events = json.loads(Path(session.end_profiling()).read_text())
    kinds = {}
    for node in onnx.load(str(optimized)).graph.node:
        if node.op_type == "QLinearConv":
            attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            kinds[node.name] = conv_kind(attributes.get("group", 1), attributes.get("kernel_shape", [0, 0]))
    times: collections.Counter = collections.Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            node = event["name"].removesuffix("_kernel_time")
            times[kinds.get(node, event["args"]["op_name"])] += event["dur"] / 1000
    return {kind: ms / (runs + 1) for kind, ms in times.items()}  # the warm-up call is in the profile too


def openvino_profile(onnx_path: Path, images: torch.Tensor, *, threads: int, runs: int) -> dict[str, float]:
    """ms per forward of OpenVINO bf16 on `onnx_path`, by kind of node (PERF_COUNT, after a warm-up)."""
    from xception.deploy.runtimes import openvino_core

    compiled = openvino_core().compile_model(str(onnx_path), "CPU", {
        "INFERENCE_PRECISION_HINT": "bf16", "PERF_COUNT": True, "INFERENCE_NUM_THREADS": threads})
    request = compiled.create_infer_request()
    request.infer({0: images.numpy()})
    times: collections.Counter = collections.Counter()
    for _ in range(runs):
        request.infer({0: images.numpy()})
        for node in request.profiling_info:
            if node.node_type == "GroupConvolution":
                kind = "depthwise"
            elif node.node_type == "Convolution":
                kind = "pointwise" if "1x1" in node.exec_type else "full conv"
            else:
                kind = node.node_type
            times[kind] += node.real_time.total_seconds() * 1000
    return {kind: ms / runs for kind, ms in times.items()}


def markdown(result: dict) -> str:
    int8, bf16 = result["onnxruntime_int8_ms"], result["openvino_bf16_ms"]
    rows = ["| kind | OpenVINO bf16 ms | share | onnxruntime int8 ms | share | bf16 / int8 |", "|---|---:|---:|---:|---:|---:|"]
    total8, total16 = sum(int8.values()), sum(bf16.values())
    for kind in sorted(set(int8) | set(bf16), key=lambda k: -(int8.get(k, 0) + bf16.get(k, 0))):
        a, b = bf16.get(kind, 0.0), int8.get(kind, 0.0)
        if max(a / total16, b / total8) < 0.001:
            continue
        ratio = f"{a / b:.2f}x" if a and b else "-"
        rows.append(f"| {kind} | {a:.1f} | {100 * a / total16:.1f}% | {b:.1f} | {100 * b / total8:.1f}% | {ratio} |")
    rows.append(f"| **all** | {total16:.1f} | | {total8:.1f} | | **{total16 / total8:.2f}x** |")
    return "\n".join([
        f"# onnxruntime int8 beside OpenVINO bf16, by kind of layer ({result['date']})", "",
        f"Produced by `{result['command']}` on {result['cpu']} ({result['threads']} threads; load average "
        f"{result['load_before'][0]:.2f} before, {result['load_after'][0]:.2f} after), `xception` at "
        f"{result['image_size']} px, batch {result['batch_size']}, {result['runs']} profiled forwards each. Kernel "
        "time per forward from each runtime's own profiler (onnxruntime: `enable_profiling`; OpenVINO: "
        "`PERF_COUNT`); profiling adds a little to each, so the ratio of the totals, not the absolute "
        "times, is the figure (`benchmarks/deploy.py` times the engines without a profiler).", "",
        *rows, ""])


def main(argv: list[str] | None = None) -> int:
    import os

    from xception.cpu import cpu_model
    from xception.deploy.export import export_for_runtimes
    from xception.deploy.quantize import quantize_onnxruntime

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=299)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/int8_profile_onnxruntime"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    size = args.image_size
    images = torch.rand(args.batch_size, 3, size, size, generator=generator) * 2 - 1
    calibration = torch.rand(16, 3, size, size, generator=generator) * 2 - 1  # as benchmarks/deploy.py
    load_before = os.getloadavg()
    model = benchmark_model("xception", calibration)
    with tempfile.TemporaryDirectory(prefix="xception-int8-profile-") as workdir:
        fp32 = export_for_runtimes(model, workdir, image_size=size)
        int8 = quantize_onnxruntime(fp32, calibration, Path(workdir) / "int8.onnx")
        result = dict(
            date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), cpu=cpu_model(),
            command=shlex.join(["python", "benchmarks/int8_profile_onnxruntime.py", *(argv or sys.argv[1:])]),
            threads=args.threads, image_size=size, batch_size=args.batch_size, runs=args.runs,
            onnxruntime_int8_ms=onnxruntime_profile(int8, images, threads=args.threads, runs=args.runs),
            openvino_bf16_ms=openvino_profile(fp32, images, threads=args.threads, runs=args.runs))
    result.update(load_before=load_before, load_after=os.getloadavg())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
