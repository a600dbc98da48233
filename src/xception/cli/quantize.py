"""`xception quantize`: int8 post-training quantization of trained weights, and what it costs."""

from __future__ import annotations

import argparse
from pathlib import Path

METHOD_HELP = {
    "pt2e": "PyTorch's PT2E with the X86 inductor quantizer, compiled by inductor",
    "nncf": "OpenVINO int8 via NNCF's default post-training quantization",
    "onnxruntime": "onnxruntime's own static quantizer (QDQ, per-channel weights), run by onnxruntime",
}


def add_parser(subparsers) -> None:
    from xception.deploy.quantize_methods import DEFAULT_CALIBRATION_SIZE, DEFAULT_METHOD, QUANTIZE_METHODS

    parser = subparsers.add_parser(
        "quantize",
        help="quantize trained weights to int8 (NNCF for OpenVINO, PT2E for PyTorch, onnxruntime's own) and "
        "measure the cost",
        description="Calibrate on a few hundred images of the data the weights were trained on, quantize "
        "to int8, and evaluate fp32 and int8 on the whole validation split: top-1 of both, the points "
        "lost, and how often their top-1 predictions agree. Writes each int8 model to --out. Every int8 model is "
        "first compared with fp32 on (up to 64 of) the calibration images and refused, never written, where its logits are "
        "off by half the largest logit or more (on a CPU without VNNI each method quantizes with 7 bits on one "
        "side, so that its 16-bit sums cannot saturate).",
    )
    parser.add_argument("--weights", required=True, help="a .safetensors file from a training run (single-label)")
    parser.add_argument("--method", choices=(*QUANTIZE_METHODS, "all"), default=DEFAULT_METHOD,
                        help=f"{DEFAULT_METHOD} (default): {METHOD_HELP[DEFAULT_METHOD]}; "
                        + "; ".join(f"{m}: {METHOD_HELP[m]}" for m in QUANTIZE_METHODS if m != DEFAULT_METHOD)
                        + "; all: each of them, the one that lost the fewest points named (benchmarks/deploy.py "
                        "measures their speed)")
    parser.add_argument("--calibration-size", type=int, default=DEFAULT_CALIBRATION_SIZE,
                        help=f"training images to calibrate on (default {DEFAULT_CALIBRATION_SIZE})")
    parser.add_argument("--data", help="the dataset's directory (default: the one in the weights' metadata)")
    parser.add_argument("--out", type=Path, help="a directory for the int8 models (int8_nncf.xml + .bin, int8_pt2e.pt2, "
                        "int8_onnxruntime.onnx) and int8.json")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: PyTorch's)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from xception.cpu import cpu_features_text, cpu_model
    from xception.deploy.int8 import CHECK_IMAGES, MAX_RELATIVE_ERROR
    from xception.deploy.quantize_methods import QUANTIZE_METHODS
    from xception.inference.quantize import best_quantized, quantize_weights, write_quantized

    if not Path(args.weights).is_file():
        raise FileNotFoundError(f"no such weight file: {args.weights}")
    methods = QUANTIZE_METHODS if args.method == "all" else (args.method,)
    results = quantize_weights(args.weights, methods=methods, calibration_size=args.calibration_size,
                               data_path=args.data, threads=args.threads)
    first = results[0].cost
    print(f"CPU: {cpu_model()}: {cpu_features_text()}")
    print(f"{first['examples']} validation images, calibrated on {args.calibration_size} training images; "
          f"fp32 (eager PyTorch) top-1 {100 * first['top1_reference']:.2f}%")
    print("| method | int8 top-1 | points lost | top-1 agreement with fp32 | logit error (calibration) "
          "| quantization s | int8 engine |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for q in results:
        c = q.cost
        print(f"| {q.method} | {100 * c['top1_candidate']:.2f}% | {c['points_lost']:.2f} | {100 * c['agreement']:.2f}% "
              f"| {q.check.relative_error:.3f} | {q.quantize_s:.0f} | {q.description} |")
    print(f"(every int8 model is checked against fp32 on up to {CHECK_IMAGES} of its calibration images first, and refused past a logit "
          f"error of {MAX_RELATIVE_ERROR} of the largest logit: docs/deploy.md)")
    best = best_quantized(results)
    if len(results) > 1:
        print(f"better: {best.method} (fewer top-1 points lost, then higher agreement)")
    if args.out is not None:
        for path in write_quantized(results, args.out, weights=args.weights, calibration_size=args.calibration_size):
            print(f"wrote {path}")
    return 0
