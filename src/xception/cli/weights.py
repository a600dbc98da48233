"""`xception weights`: the published weights by name (the registry), where they are cached, and fetching them."""

from __future__ import annotations

import argparse
import json


def add_weights_options(parser: argparse.ArgumentParser, *, ensemble: bool = False) -> None:
    """--weights and --model, as every command that runs trained or published weights takes them.
    `ensemble`: --weights may be given several times (a list; the mean of their calibrated probabilities)."""
    parser.add_argument("--weights", required=True, action="append" if ensemble else "store",
                        help="a .safetensors file from training or `xception convert`, the official .h5, or "
                        "published weights by name (imagenet; see docs/weights.md)"
                        + ("; several --weights, or one ensemble file (.json, written by `xception calibrate "
                           "--weights A --weights B --out E.json`): an ensemble, the mean of their calibrated "
                           "probabilities (the same class names)" if ensemble else ""))
    parser.add_argument("--model", help="the model of published weights or of a foreign file (default: xception)")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "weights",
        help="list the published weights (--weights imagenet, ...), or download them into the cache",
        description="List the registered published weights: their file, parameters, published ImageNet "
        "accuracy and its source, and whether the file is in the cache ($XCEPTION_HOME, else "
        "~/.cache/xception). --fetch downloads and checks entries, e.g. before going offline.",
    )
    parser.add_argument("--format", choices=("table", "json", "markdown"), default="table")
    parser.add_argument("--fetch", nargs="+", metavar="KEY", help="download these entries (xception.imagenet, ...)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from xception.errors import UnknownNameError
    from xception.models.weights.download import cached_path, fetch_weights
    from xception.models.weights.registry import WEIGHTS

    if args.fetch:
        unknown = [key for key in args.fetch if key not in WEIGHTS]
        if unknown:
            raise UnknownNameError(f"unknown weights {unknown[0]!r}; registered: {', '.join(sorted(WEIGHTS))}")
        for key in args.fetch:
            print(f"{key}: {fetch_weights(WEIGHTS[key])}")
        return 0
    rows = [dict(key=key, model=entry.model_name, file=entry.file_name, params=entry.num_params,
                 num_classes=entry.num_classes, metrics=[m.__dict__ for m in entry.metrics],
                 cached=str(cached_path(entry)) if cached_path(entry).is_file() else None,
                 description=entry.description) for key, entry in sorted(WEIGHTS.items())]
    if args.format == "json":
        print(json.dumps(rows, indent=2))
    elif args.format == "markdown":
        print("| weights | params | classes | top-1 | top-5 | source of the figures | what |")
        print("|---|---:|---:|---:|---:|---|---|")
        for r in rows:
            metrics = r["metrics"] or [dict(top1=None, top5=None, source="")]
            for i, m in enumerate(metrics):
                lead = f"`{r['key']}` | {r['params']:,} | {r['num_classes']}" if i == 0 else " | |"
                top1, top5 = (f"{_percent(m[k])}%" if m[k] is not None else "-" for k in ("top1", "top5"))
                print(f"| {lead} | {top1} | {top5} | {m['source'] or '-'} | {r['description'] if i == 0 else ''} |")
    else:
        for r in rows:
            figures = ", ".join(f"{_percent(m['top1'])}/{_percent(m['top5'])}" for m in r["metrics"]) or "-"
            print(f"{r['key']:26} {r['params']:>12,} params  top-1/5 {figures:14}  "
                  f"{'cached' if r['cached'] else 'not cached'}  {r['file']}")
    return 0


def _percent(fraction: float) -> str:
    """100 * fraction with the digits the publisher gave (0.790 -> "79.0", 0.77294 -> "77.294")."""
    value = round(100 * fraction, 3)
    digits = next(d for d in (1, 2, 3) if round(value, d) == value)
    return f"{value:.{digits}f}"
