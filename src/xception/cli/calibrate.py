"""`xception calibrate`: fit the decision policy (a temperature; a threshold for two classes and
multi-label weights) of existing weights on labelled images, and write the weights with it to a new file."""

from __future__ import annotations

import argparse

from xception.cli.train import add_bad_image_options
from xception.description import DEFAULT_THRESHOLD_RULE


def add_parser(subparsers) -> None:
    from xception.cli.video import add_video_options
    from xception.cli.weights import add_weights_options

    parser = subparsers.add_parser(
        "calibrate",
        help="fit a temperature and a decision threshold to weights on a validation split; write a new file",
        description="Fit the decision policy of a classifier's weights (from training, `xception convert` or "
        "published) on labelled images: a temperature that makes its probabilities mean what they say (Guo et "
        "al. 2017: the one scalar that minimises the negative log-likelihood), and for two classes or "
        "multi-label weights a threshold on the calibrated probability chosen by --threshold-rule. The images "
        "are the validation split of the weights' data, or another given with --data (a whole folder with "
        "--split all), as `xception eval` chooses them. Writes the weights with the policy to --out (never over "
        "the input) and the reliability diagram beside it; predict, eval and serve then decide with it. Several "
        "--weights (or an ensemble file): the ensemble's policy, fitted on the mean of the members' calibrated "
        "probabilities and written with the members' list to the ensemble file --out (NAME.json).",
    )
    add_weights_options(parser, ensemble=True)
    parser.add_argument("--out", required=True, metavar="FILE",
                        help="the .safetensors file to write; for an ensemble, the ensemble file (.json) that lists "
                        "the members and carries the ensemble's policy")
    parser.add_argument("--threshold-rule", default=DEFAULT_THRESHOLD_RULE, metavar="RULE",
                        help="eer (the default: false positive rate = false negative rate), max_f1, fpr=X (the "
                        "highest true positive rate with false positive rate <= X, e.g. fpr=0.01) or tpr=X (the "
                        "lowest false positive rate with true positive rate >= X); none: temperature only")
    parser.add_argument("--per-class-thresholds", action="store_true",
                        help="multi-label weights: also a threshold per class, chosen by the rule on that class's "
                        "images (a class they cannot measure, e.g. without a positive, keeps the pooled one, and the "
                        "decision's reason counts them)")
    parser.add_argument("--dataset", help="the data source of --data (default: the weights' own, as `xception eval`)")
    parser.add_argument("--data", help="the dataset's directory (default: the one in the weights' metadata)")
    parser.add_argument("--split", choices=("val", "all"),
                        help="val (default): the data's validation split; all: every image of the folder --data "
                        "names (a calibration folder laid out as in training)")
    parser.add_argument("--ground-truth", help="ImageNet labels file of a flat validation folder")
    parser.add_argument("--videos", metavar="DIR",
                        help="fit a two-class detector's video threshold instead: --threshold-rule on the --aggregate "
                        "of the frame scores of each video of DIR/<class>/ (read as `xception eval --videos` reads "
                        "them, at least 20 videos); predict and eval then decide videos with that --aggregate by it")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", help="cpu or cuda (default: a GPU when there is one)")
    add_bad_image_options(parser, training=False)
    add_video_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from xception.description import parse_threshold_rule
    from xception.eval.calibrate import calibrate_file

    rule = None if args.threshold_rule == "none" else args.threshold_rule
    if rule is not None:
        parse_threshold_rule(rule)  # a misspelt rule fails before any image is read
    if args.videos is not None:
        return _calibrate_videos(args, rule)
    result = calibrate_file(args.weights, out=args.out, rule=rule, source=args.dataset, data_path=args.data,
                            split=args.split, batch_size=args.batch_size, device=args.device, model_name=args.model,
                            ground_truth=args.ground_truth, bad_images=args.bad_images,
                            bad_image_fraction=args.bad_image_fraction, per_class=args.per_class_thresholds,
                            progress=True)
    decision = result.decision
    print(f"temperature {decision.temperature:.4f} (fitted on {decision.split_size} {decision.split} images)")
    if decision.threshold is not None:
        print(decision.reason())
    print(f"ECE {result.before['ece']:.4f} -> {result.after['ece']:.4f}, NLL {result.before['nll']:.4f} -> "
          f"{result.after['nll']:.4f} (on the images fitted)")
    print(f"wrote {result.out} and {result.reliability}")
    return 0


def _calibrate_videos(args: argparse.Namespace, rule: str | None) -> int:
    from xception.cli.video import sampling_of
    from xception.eval.calibrate import calibrate_videos

    if rule is None:
        raise ValueError("--videos fits a threshold: give a --threshold-rule other than none")
    if len(args.weights) != 1:
        raise ValueError("--videos fits one model's video threshold: give one --weights")
    out, policy, metrics = calibrate_videos(args.weights[0], args.videos, out=args.out, rule=rule,
                                            sampling=sampling_of(args), crop=args.crop, face=args.face,
                                            aggregate=args.aggregate, workers=args.workers, device=args.device,
                                            model_name=args.model, progress=True)
    group = metrics["binary"]["group"]
    print(policy.reason())
    print(f"videos: {metrics['videos']} with a verdict (ROC-AUC {group['roc_auc']:.4f}, EER {group['eer']:.4f}), "
          f"{len(metrics['no_verdict'])} without, {len(metrics['unreadable'])} unreadable")
    print(f"wrote {out}")
    return 0
