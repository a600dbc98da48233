"""uvicorn running the server's application: it binds, serves until SIGTERM or SIGINT, then stops
accepting, lets the requests in flight finish (up to `graceful_timeout_s`), drains the batcher and
returns, so that the process exits 0."""

from __future__ import annotations

import signal

import uvicorn

from xception.errors import UserError
from xception.serve.app import HeatmapRenderer, create_app
from xception.serve.config import ServeConfig
from xception.serve.model import ServedModel


def run_server(served: ServedModel, config: ServeConfig, *, heatmap: HeatmapRenderer | None = None) -> None:
    """Serve `served` at config.host:config.port until a stop signal."""
    settings = uvicorn.Config(create_app(served, config, heatmap=heatmap), host=config.host, port=config.port,
                              timeout_graceful_shutdown=config.graceful_timeout_s, log_level="info",
                              access_log=False, server_header=False,
                              # uvicorn's own dictConfig would replace (and close) every logging handler
                              # of the process; its messages go through the command line's logging.
                              log_config=None)
    server = uvicorn.Server(settings)
    # uvicorn handles SIGTERM and SIGINT itself (a graceful stop), then restores the handlers it found
    # and raises the signal again, so that a process left with the default handlers dies of it (exit
    # status -15 for SIGTERM). The stop was graceful, so the handlers it finds and restores do nothing
    # and the command exits 0.
    previous = {sig: signal.signal(sig, _stopped) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run()
    except SystemExit:  # uvicorn's way out of a failed start (a port in use, a host it cannot bind): logged
        raise UserError(f"could not serve on {config.host}:{config.port}: see the message above") from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stopped(signum: int, frame) -> None:
    """What a stop signal does once uvicorn has finished: nothing more (the server has stopped)."""
