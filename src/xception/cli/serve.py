"""`xception serve`: trained weights behind HTTP in the Open Inference Protocol, with /predict, a page
to try it and Prometheus metrics (docs/serve.md)."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    from xception.cli.weights import add_weights_options
    from xception.deploy.runtime_names import RUNTIMES
    from xception.precisions import PRECISIONS
    from xception.serve.config import ServeConfig
    from xception.tta_names import TTA_CHOICES, TTA_HELP

    defaults = ServeConfig()
    parser = subparsers.add_parser(
        "serve",
        help="serve trained weights over HTTP (Open Inference Protocol v2, /predict, a page to try it)",
        description="Serve a classifier's weights over HTTP until SIGTERM or Ctrl-C: the Open Inference "
        "Protocol's REST endpoints (/v2/...), POST /predict (an image as the body; the top-k as JSON, the same "
        "answer as `xception predict`), a page to try it at /, and Prometheus metrics at /metrics. Requests "
        "are batched (at most --max-batch-size images, waiting at most --max-delay-ms); past --max-queue "
        "waiting images the server answers 503 with Retry-After. On SIGTERM it stops accepting, finishes "
        "what is in flight and exits 0. On a CPU the runtime and precision are the fastest that `xception bench "
        "--choose --weights W` measured on this machine at the batch size nearest --max-batch-size (throughput), "
        "else a preference; the choice and its figures are logged at start.",
    )
    add_weights_options(parser, ensemble=True)
    parser.add_argument("--name", help="the model's name in the URLs (default: its registry model, e.g. xception)")
    parser.add_argument("--tta", choices=TTA_CHOICES, default="none",
                        help=TTA_HELP)
    parser.add_argument("--runtime", choices=RUNTIMES,
                        help="default: the fastest measured by `xception bench --choose` at the nearest batch size "
                        "(cached per machine), else a preference; logged with its figures")
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="default: the fastest correct one for the device and runtime")
    parser.add_argument("--device", help="cpu or cuda (default: a GPU when there is one)")
    parser.add_argument("--host", default=defaults.host,
                        help=f"address to listen on (default: {defaults.host}, this machine only)")
    parser.add_argument("--port", type=int, default=defaults.port, help=f"default: {defaults.port}")
    parser.add_argument("--max-batch-size", type=int, default=defaults.max_batch_size,
                        help=f"images per inference batch, and per request (default: {defaults.max_batch_size})")
    parser.add_argument("--max-delay-ms", type=float, default=defaults.max_delay_ms,
                        help=f"how long a request waits for others to batch with (default: {defaults.max_delay_ms})")
    parser.add_argument("--max-queue", type=int, default=defaults.max_queue,
                        help=f"images waiting for inference before 503 (default: {defaults.max_queue})")
    parser.add_argument("--max-body-mb", type=float, default=defaults.max_body_bytes / 2**20,
                        help=f"largest request body in MiB, else 413 (default: {defaults.max_body_bytes / 2**20:g})")
    parser.add_argument("--top-k", type=int, default=defaults.top_k, help=f"default: {defaults.top_k}")
    parser.add_argument("--heatmap", choices=("gradcam", "gradcam++", "cam", "none"), default="gradcam",
                        help="the class activation map that /predict?heatmap=true (the page) returns of the top "
                        "class, computed with the PyTorch model (default: gradcam; none: no maps)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import importlib.util

    missing = [name for name in ("fastapi", "uvicorn", "prometheus_client") if importlib.util.find_spec(name) is None]
    if missing:
        raise ValueError(f"xception serve needs {', '.join(missing)}: pip install 'xception[serve]'")

    from xception.serve.config import ServeConfig
    from xception.serve.model import load_served_model
    from xception.serve.server import run_server

    config = ServeConfig(host=args.host, port=args.port, max_batch_size=args.max_batch_size,
                         max_delay_ms=args.max_delay_ms, max_queue=args.max_queue,
                         max_body_bytes=int(args.max_body_mb * 2**20), top_k=args.top_k)
    weights = args.weights[0] if len(args.weights) == 1 else args.weights  # several: an ensemble
    served = load_served_model(weights, model_name=args.model, name=args.name, runtime=args.runtime,
                               precision=args.precision, device=args.device, max_batch_size=config.max_batch_size,
                               tta=args.tta)
    heatmap = None
    if served.ensemble is not None and args.heatmap != "none":
        import logging

        logging.getLogger(__name__).info("no class activation maps for an ensemble (a map is one model's)")
    elif args.heatmap != "none":
        from xception.explain.renderer import HeatmapPNG

        heatmap = HeatmapPNG(served.model, method=args.heatmap)
    run_server(served, config, heatmap=heatmap)
    return 0
