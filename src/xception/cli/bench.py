"""`xception bench`: training and inference throughput, side by side with timm and torchvision."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> None:
    from xception.precisions import PRECISIONS
    parser = subparsers.add_parser(
        "bench",
        help="measure training and inference throughput side by side",
        description="Time this project's models against timm and torchvision in the same run: "
        "interleaved rounds, median of repeats, with the machine's measured convolution peak. "
        "Prints a table (or JSON with --json).",
    )
    parser.add_argument(
        "--models",
        nargs="+",
        default=["xception", "timm:legacy_xception", "torchvision:inception_v3", "onnxruntime:xception",
                 "openvino:xception"],
        help="registered names of this project, timm:NAME, torchvision:NAME, or onnxruntime:NAME / "
        "openvino:NAME (this project's model from its ONNX export in that runtime; inference only)",
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=299)
    parser.add_argument("--precision", nargs="+", choices=PRECISIONS, default=None,
                        help="default: fp32, bf16 and int8 on CPU, bf16 on CUDA; int8: post-training quantization "
                        "(inference; NNCF for openvino:NAME, PT2E for this project's PyTorch models)")
    parser.add_argument("--modes", nargs="+", choices=("train", "infer"), default=["train", "infer"])
    parser.add_argument("--layout", choices=("best", "channels_last", "contiguous"), default="best",
                        help="memory format; 'best' times one step in each and keeps the faster")
    parser.add_argument("--compile", action="store_true", help="torch.compile every model (time reported)")
    parser.add_argument("--no-fuse", dest="fuse", action="store_false",
                        help="do not fold BatchNorm into convolutions for this project's models at inference")
    parser.add_argument("--no-compile-ours", dest="compile_ours_inference", action="store_false",
                        help="do not torch.compile (with freezing) this project's models at inference")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--iterations", type=int, default=3, help="timed steps per round")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds; the median is reported")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per model before the rounds")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-peak", dest="measure_peak", action="store_false", help="skip the peak measurement")
    parser.add_argument("--no-memory", dest="measure_memory", action="store_false",
                        help="skip the peak memory measurement")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the result as JSON ('-': stdout only)")
    choose = parser.add_argument_group(
        "runtime calibration", "--choose times every installed runtime and precision on the model of --weights on "
        "this machine, at batch 1 (what `predict` decides by: latency) and at --eval-batch-size (what `eval` decides "
        "by: throughput), and caches the result in $XCEPTION_HOME/runtime-timings/; `predict` and `eval` then run "
        "the fastest measured and print the figures (int8, timed too, only where --precision int8 asks for it: it "
        "changes some answers)")
    choose.add_argument("--choose", action="store_true", help="calibrate the runtime choice for --weights")
    choose.add_argument("--weights", help="with --choose: the weight file to calibrate for")
    choose.add_argument("--eval-batch-size", type=int, default=256, help="with --choose: eval's --batch-size (256)")
    choose.add_argument("--budget", type=float, default=None,
                        help="with --choose: seconds of timed rounds per batch size (default 60; 3 rounds at least)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.choose:
        return run_choose(args)
    from xception.bench import BenchConfig, run_benchmark
    from xception.bench.report import machine_line, markdown_table, peaks_table, ratios_table, to_json

    precisions = args.precision or (["bf16"] if args.device.startswith("cuda") else ["fp32", "bf16", "int8"])
    config = BenchConfig(
        models=tuple(args.models),
        batch_size=args.batch_size,
        image_size=args.image_size,
        precisions=tuple(precisions),
        modes=tuple(args.modes),
        layout=args.layout,
        compile=args.compile,
        fuse=args.fuse,
        compile_ours_inference=args.compile_ours_inference,
        threads=args.threads,
        iterations=args.iterations,
        repeats=args.repeats,
        warmup=args.warmup,
        device=args.device,
        measure_peak=args.measure_peak,
        measure_memory=args.measure_memory,
    )
    result = run_benchmark(config)
    if args.json is not None and str(args.json) == "-":
        print(to_json(result))
        return 0
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(to_json(result) + "\n")
    print(machine_line(result))
    print()
    print(markdown_table(result))
    if result.peaks:
        print()
        print(peaks_table(result))
    ratio_text = ratios_table(result, args.models[0])
    if ratio_text:
        print()
        print(ratio_text)
    return 0


def run_choose(args: argparse.Namespace) -> int:
    from xception.cpu import cpu_features_text, cpu_model
    from xception.deploy.timings import DEFAULT_BUDGET_S
    from xception.inference.session import calibrate_weights

    if args.weights is None:
        raise ValueError("--choose needs --weights: the weight file whose runtime choice to measure")
    if not Path(args.weights).is_file():
        raise FileNotFoundError(f"no such weight file: {args.weights}")
    sizes = tuple(dict.fromkeys((1, args.eval_batch_size)))
    # The features that decide which int8 and bf16 paths are right and fast here (issue 26).
    print(f"CPU: {cpu_model()}: {cpu_features_text()}")
    for timings, path in calibrate_weights(args.weights, batch_sizes=sizes, threads=args.threads,
                                           budget_s=args.budget or DEFAULT_BUDGET_S):
        ranked = sorted(timings.measurements, key=lambda m: m.median_s)
        size = ranked[0].batch_size if ranked else "?"
        print(f"batch {size}, {timings.key['threads']} threads, {timings.key['cpu']}, measured {timings.measured_at} "
              f"({len(ranked[0].seconds) if ranked else 0} interleaved rounds, medians):")
        print("| runtime | precision | ms per batch | img/s | engine |")
        print("|---|---|---:|---:|---|")
        for m in ranked:
            print(f"| {m.runtime} | {m.precision} | {1000 * m.median_s:.1f} | {m.images_per_s:.1f} | {m.engine} |")
        print(f"wrote {path}")
    return 0
