"""The `xception` command line: one subcommand per module in this package; each only parses and calls."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from xception.errors import user_message

# Each name is a module of this package with `add_parser(subparsers)`; the parser it adds sets
# `run`, a function of the parsed arguments that returns an exit status.
COMMANDS = ("models", "weights", "bench", "convert", "export", "push", "quantize", "train", "eval", "calibrate",
            "predict", "explain", "serve", "demo", "data", "experiment")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xception",
        description="Xception (Chollet, CVPR 2017): models, weights, training, experiments and benchmarks.",
        epilog="Run `xception COMMAND --help` for the options of each command.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"xception.cli.{name}").add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # This project's own steps at INFO; the libraries' (onnxscript's optimizer passes, the exporter's
    # steps) only from WARNING up, unless -v asks for everything.
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not args.verbose:
        logging.getLogger("xception").setLevel(logging.INFO)
    try:
        return int(args.run(args) or 0)
    except Exception as error:
        # A mistake of the user's: say what and stop, without a traceback (use -v for one). Anything
        # else is a bug and keeps its traceback.
        message = user_message(error)
        if message is None or args.verbose:
            raise
        print(f"xception {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
