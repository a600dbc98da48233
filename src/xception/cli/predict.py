"""`xception predict`: the top-k classes of images, with names and probabilities."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="classify images with trained weights",
        description="Print the top-k classes and probabilities of each IMAGE, using a weight file "
        "written by training or `xception convert` (it carries the model, the class names and the data "
        "preparation), the official Keras .h5, or published weights by name (`--weights imagenet`: "
        "downloaded once into the cache, see docs/weights.md).",
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.add_argument("--weights", required=True, help="a .safetensors file from training or convert, the "
                        "official .h5, or a published name (imagenet)")
    parser.add_argument("--model", help="the model of published weights or of a foreign file (default: xception)")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--device", help="cpu or cuda (default: a GPU when there is one)")
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16", "fp16", "int8"),
        help="default: the fastest correct one for the device and runtime, which is printed; int8 quantizes "
        "after calibrating on a few hundred of the weights' training images",
    )
    parser.add_argument("--runtime", choices=("torch", "onnxruntime", "openvino"),
                        help="default: the fastest installed for the device, which is printed")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    import torch

    from xception.data.images import load_image
    from xception.data.prediction import prediction_transform
    from xception.deploy.choice import choose_runtime
    from xception.deploy.trained import trained_engine
    from xception.distributed import pick_device
    from xception.eval.predict import predict
    from xception.models.trained import load_trained_model

    missing = [p for p in args.images if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"no such image file: {', '.join(missing)}")
    if args.top_k < 1:
        raise ValueError(f"--top-k must be >= 1, got {args.top_k}")
    device = pick_device(args.device)
    model, metadata = load_trained_model(args.weights, model_name=args.model)
    if not metadata.get("class_names"):
        raise ValueError(f"{args.weights} records no class names: a notop file (features, not classes) or a "
                         "foreign file whose head is not ImageNet's; fine-tune or convert it with this project")
    choice = choose_runtime(device, runtime=args.runtime, precision=args.precision)
    engine = trained_engine(model, metadata, choice, device=device)
    print(f"runtime: {engine.description} ({choice.reason})", file=sys.stderr)
    transform = prediction_transform(metadata)
    channels = metadata["in_channels"]
    images = torch.stack([transform(load_image(p, in_channels=channels)) for p in args.images])
    rows = predict(engine, images, class_names=metadata["class_names"], top_k=args.top_k,
                   multilabel=bool(metadata.get("multilabel")))
    for path, row in zip(args.images, rows, strict=True):
        print(path)
        for name, probability in row:
            print(f"  {probability:7.4f}  {name}")
    return 0
