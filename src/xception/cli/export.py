"""`xception export`: a model (optionally with weights) to ONNX, OpenVINO IR, TorchScript or torch.export,
verified; or trained weights as a Hugging Face Hub folder (`--format hub`) with its model card."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    from xception.deploy.export_formats import EXPORT_FORMATS

    parser = subparsers.add_parser(
        "export",
        help="export a model to ONNX / OpenVINO / TorchScript / torch.export (checked against PyTorch), or "
        "weights as a Hugging Face Hub folder",
        description="Export a registered model and run the exported file (ONNX in onnxruntime, OpenVINO IR "
        "in OpenVINO fp32) on a random batch, printing the largest absolute difference from PyTorch's output. "
        "--format hub --weights W --out DIR writes model.safetensors, config.json (timm's keys) and README.md "
        "(the model card, from the weights' description): a folder `xception push` uploads, that "
        "`--weights hf-hub:ORG/NAME` loads back, and that timm loads where it has the architecture.",
    )
    parser.add_argument(
        "--model",
        help="registered model name (see `xception models`); optional with --weights from `xception "
        "train` or `xception convert`, whose metadata names the model, its config, classes and channels",
    )
    parser.add_argument("--weights", default=None, help="weight file in any format `xception convert` reads, or "
                        "published weights by name (imagenet)")
    parser.add_argument("--format", required=True, choices=(*EXPORT_FORMATS, "hub"))
    parser.add_argument("--out", required=True, help="file to write (.onnx, .xml for openvino, .pt, or .pt2 for "
                        "torch_export), or the folder for hub")
    parser.add_argument("--repo", default="ORG/NAME", help="hub: the Hub id the model card's examples load it by")
    parser.add_argument("--license", default="other", help="hub: the license in the model card's metadata "
                        "(a Hub license id, e.g. apache-2.0, mit, cc-by-4.0)")
    parser.add_argument(
        "--num-classes", type=int, default=None, help="classes of the head (0: none; default: the weights' or 1000)"
    )
    parser.add_argument("--image-size", type=int, default=None, help="default: the model's input size")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--tolerance", type=float, default=1e-4, help="fail above this max abs difference")
    parser.add_argument("--raw-input", action="store_true",
                        help="with --weights, onnx or openvino: take uint8 images (N, H, W, C) at the input size, "
                        "scale them inside the graph, output logits and probabilities, and write the class names "
                        "and preparation into the file's metadata, for serving with no code of ours (docs/serve.md)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from xception.deploy.export import export_model, verify_export
    from xception.models import MODELS, create_model
    from xception.models.trained import open_weights

    if args.format == "hub":
        return _export_hub(args)
    if args.raw_input:
        return _export_raw_input(args)
    if args.weights is not None and args.num_classes is None:
        # Our files carry their config, classes and channels; published weights and foreign files are
        # sized by their logistic layer.
        model, _, description = open_weights(args.weights, model_name=args.model)
        default_size = description.image_size
    elif args.model is None:
        raise ValueError("--model is required without --weights")
    else:
        num_classes = 1000 if args.num_classes is None else args.num_classes
        model = create_model(args.model, num_classes=num_classes, weights=args.weights)
        default_size = MODELS[model.model_name].input_size
    image_size = args.image_size or default_size
    path = export_model(model, args.out, format=args.format, image_size=image_size, batch_size=args.batch_size)
    difference = verify_export(model, path, format=args.format, image_size=image_size, batch_size=args.batch_size)
    print(f"wrote {path} ({args.format}, {image_size}x{image_size}); max abs difference from PyTorch: {difference:.3g}")
    if difference > args.tolerance:
        print(f"error: the exported model differs from PyTorch by more than --tolerance {args.tolerance}")
        return 1
    return 0



def _export_raw_input(args: argparse.Namespace) -> int:
    from xception.deploy.raw_input import export_raw_input, verify_raw_input
    from xception.models.trained import open_weights

    if args.weights is None:
        raise ValueError("--raw-input needs --weights (the class names and preparation come from them)")
    model, _, description = open_weights(args.weights, model_name=args.model)
    size = args.image_size or description.image_size
    path = export_raw_input(model, description, args.out, format=args.format, image_size=size)
    difference = verify_raw_input(model, description, path, image_size=size)
    print(f"wrote {path} ({args.format}, uint8 (N, {size}, {size}, {description.in_channels}) in, probabilities out); "
          f"max abs difference of the probabilities from PyTorch: {difference:.3g}")
    if difference > args.tolerance:
        print(f"error: the exported model differs from PyTorch by more than --tolerance {args.tolerance}")
        return 1
    return 0


def _export_hub(args: argparse.Namespace) -> int:
    from xception.models.hub_folder import write_hub_folder

    if args.weights is None:
        raise ValueError("--format hub needs --weights (the model card is written from their description)")
    folder = write_hub_folder(args.weights, args.out, repo_id=args.repo, license=args.license)
    print(f"wrote {folder.directory}: {', '.join(path.name for path in folder.files)}")
    if folder.timm.architecture is None:
        print(f"timm cannot load it ({folder.timm.reason}): this project's format only")
    else:
        print(f"timm loads it as {folder.timm.architecture}" + ("" if folder.timm.exact else f" ({folder.timm.reason})"))
    return 0
