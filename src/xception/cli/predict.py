"""`xception predict`: the top-k classes of images, with names and probabilities; for a segmentation
model, each image's mask as a PNG beside it and the share of its pixels in each class."""

from __future__ import annotations

import argparse

from xception.explain.method_names import METHODS


def add_parser(subparsers) -> None:
    from xception.cli.video import add_video_options
    from xception.cli.weights import add_weights_options
    from xception.deploy.runtime_names import RUNTIMES
    from xception.precisions import PRECISIONS
    from xception.tta_names import TTA_CHOICES, TTA_HELP

    parser = subparsers.add_parser(
        "predict",
        help="classify images (or segment them) with trained weights",
        description="Print the top-k classes and probabilities of each IMAGE, using a weight file "
        "written by training or `xception convert` (it carries the model, the class names and the data "
        "preparation), the official Keras .h5, or published weights by name (`--weights imagenet`: "
        "downloaded once into the cache, see docs/weights.md). With a segmentation model (`xception train "
        "--task segmentation`) it writes each IMAGE's mask as NAME.mask.png beside it (or in --out): a palette "
        "PNG whose pixel values are the class indices, at the model's input size, and prints the share of "
        "pixels in each class found. VIDEO files (or folders of them) are scored frame by frame, or face by "
        "face with --crop faces, and get one verdict each (docs/video.md).",
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE|VIDEO")
    add_weights_options(parser, ensemble=True)
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--device", help="cpu or cuda (default: a GPU when there is one)")
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="default: the fastest correct one for the device and runtime, which is printed; int8 quantizes "
        "after calibrating on a few hundred of the weights' training images",
    )
    parser.add_argument("--tta", choices=TTA_CHOICES, default="none",
                        help=TTA_HELP)
    parser.add_argument("--runtime", choices=RUNTIMES,
                        help="default: on a CPU the lowest latency measured by `xception bench --choose` (cached per "
                        "machine), else a preference; the choice and its figures are printed")
    parser.add_argument("--out", metavar="DIR", help="write the masks and --explain's overlays here (default: "
                        "beside each image); videos: each one's per-frame table (VIDEO.frames.csv) and verdict "
                        "(VIDEO.verdict.json)")
    parser.add_argument("--explain", nargs="?", const="gradcam", choices=METHODS, metavar="METHOD",
                        help="also write the class activation map of each image's top prediction (segmentation: "
                        "of its most common class) as NAME.CLASS.METHOD.png and .npy (METHOD: gradcam when not "
                        "given; see `xception explain`)")
    add_video_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import functools
    import sys
    from pathlib import Path

    import torch

    from xception.cli.video import is_video_run, predict_videos
    from xception.inference.ensemble import is_ensemble_file
    from xception.inference.session import InferenceSession
    from xception.tasks import get_task

    if is_video_run(args.images):
        return predict_videos(args)  # one --weights, several, or an ensemble file
    if len(args.weights) > 1 or is_ensemble_file(args.weights[0]):
        return _predict_ensemble(args)
    args.weights = args.weights[0]  # one file: what every other path reads
    missing = [p for p in args.images if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"no such image file: {', '.join(missing)}")
    if args.top_k < 1:
        raise ValueError(f"--top-k must be >= 1, got {args.top_k}")
    # One image at a time: the latency at batch 1 decides (`xception bench --choose` measures it).
    session = InferenceSession.open(args.weights, model_name=args.model, runtime=args.runtime,
                                    precision=args.precision, device=args.device, workload="latency")
    print(f"runtime: {session.runtime_text()}", file=sys.stderr)
    images = torch.stack([session.prepare(p) for p in args.images])
    # The calibrated logits: the probabilities and the decision follow the weights' decision policy.
    calibrated = functools.partial(session.calibrated_logits, tta=args.tta)  # test-time augmentation's views
    top = get_task(session.task).write_predictions(calibrated, images, args.images, session.description,
                                                   top_k=args.top_k, out=args.out)
    if args.explain:
        # The class the engine ranked first (its runtime or precision may differ from the fp32 model's);
        # None for a segmentation model: each image's most common class.
        _write_explanations(session.model.to(session.device), images, args.images, top, session.description, args)
    return 0


def _predict_ensemble(args: argparse.Namespace) -> int:
    """The top-k of the mean of the members' calibrated probabilities, each member preparing the
    images as its weights were evaluated; decided by the ensemble file's policy, else by argmax
    (`xception.inference.ensemble`)."""
    import dataclasses
    import functools
    import sys
    from pathlib import Path

    import torch

    from xception.inference.ensemble import Ensemble
    from xception.tasks import get_task

    if args.explain:
        raise ValueError("--explain shows what one model looks at; give one --weights to explain")
    missing = [p for p in args.images if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"no such image file: {', '.join(missing)}")
    if args.top_k < 1:
        raise ValueError(f"--top-k must be >= 1, got {args.top_k}")
    ensemble = Ensemble.open(args.weights, model_name=args.model, runtime=args.runtime, precision=args.precision,
                             device=args.device, workload="latency")
    for member in ensemble.members:
        print(f"runtime of {member.weights}: {member.runtime_text()}", file=sys.stderr)
    print(ensemble.describe(), file=sys.stderr)
    images = torch.stack([ensemble.prepare(p) for p in args.images])  # each member's own preparation inside
    calibrated = functools.partial(ensemble.calibrated_logits, tta=args.tta)
    description = dataclasses.replace(ensemble.members[0].description, decision=ensemble.decision)
    get_task(description.task).write_predictions(calibrated, images, args.images, description,
                                                 top_k=args.top_k, out=args.out)
    return 0


def _write_explanations(model, images, paths: list[str], classes: list[int] | None, description, args) -> None:
    from xception.explain import explain
    from xception.explain.files import write_explanation

    explanation = explain(model, images, classes, method=args.explain)
    for written in write_explanation(explanation, images, paths, class_names=list(description.class_names),
                                     multilabel=description.multilabel, out=args.out):
        print(f"  explained: {written}")
