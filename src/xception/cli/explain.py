"""`xception explain`: what the model looks at, as class activation maps of images (docs/explain.md)."""

from __future__ import annotations

import argparse

from xception.explain.method_names import METHODS


def add_parser(subparsers) -> None:
    from xception.cli.video import add_sampling_options
    from xception.cli.weights import add_weights_options

    parser = subparsers.add_parser(
        "explain",
        help="class activation maps: where in each image the evidence for a class lies",
        description="For each IMAGE and each --class (default: the top prediction; segmentation: the class "
        "predicted on the most pixels, background aside), write into --out an overlay of the map on the "
        "image as the model saw it (NAME.CLASS.METHOD.png) and the raw map at the input's resolution "
        "in [0, 1] (NAME.CLASS.METHOD.npy), and print the class, its probability (segmentation: its share "
        "of the pixels) and the layer. Methods: gradcam (default), cam (the exact CAM of a network ending "
        "in global average pooling and one linear layer), gradcam++, scorecam (one forward pass per channel "
        "of the layer: slow). The layer is a name of the model's feature_info; default: the last feature "
        "map before global pooling. A VIDEO (or a folder of them) gets one contact sheet: the map of each "
        "sampled frame, or face with --crop faces, for the video's class (docs/video.md).",
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE|VIDEO")
    add_weights_options(parser)
    parser.add_argument("--class", dest="classes", action="append", metavar="NAME",
                        help="a class to explain, by name (repeat for several: one map per class)")
    parser.add_argument("--layer", metavar="NAME", help="a feature map, as named in the model's feature_info "
                        "(a wrong name lists them); default: the last one before global pooling")
    parser.add_argument("--method", choices=METHODS, default="gradcam")
    parser.add_argument("--out", required=True, metavar="DIR", help="where the PNG and .npy files go")
    parser.add_argument("--device", help="cpu or cuda (default: a GPU when there is one)")
    add_sampling_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from xception.cli.video import explain_videos, is_video_run
    from xception.explain.files import explain_files
    from xception.inference.session import InferenceSession

    if is_video_run(args.images):
        return explain_videos(args)
    missing = [p for p in args.images if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"no such image file: {', '.join(missing)}")
    session = InferenceSession.open(args.weights, model_name=args.model, device=args.device)
    for written in explain_files(session, args.images, classes=args.classes, method=args.method,
                                 layer=args.layer, out=args.out):
        print(written)
    return 0
