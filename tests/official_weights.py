"""Test doubles of the published weights: a file in the official Keras layout with random weights
(Keras' own Xception on its torch backend), served from a loopback HTTP server, and registry entries
that point at it with the file's real checksum. Nothing here reaches the internet."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import os
import threading
from pathlib import Path

import numpy as np

from keras_layout_files import write_keras2_h5
from xception.models.weights.registry import Checksum, WeightsEntry


def write_official_xception(path: Path):
    """(`path`, the Keras model): Keras Applications' Xception with its top, random weights (seed 0),
    written in the layout of the official .h5 files. Its BatchNorm statistics are set from a batch of
    noise, as in tests/test_keras_parity.py, so that outputs depend on the image and the top classes
    are far apart (with Keras' initial statistics the logits differ by 1e-8)."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    model = keras.applications.Xception(weights=None, input_shape=(299, 299, 3), classifier_activation=None)
    batch_norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in batch_norms:
        layer.momentum = 0.0  # one training-mode pass sets the moving statistics to the batch's
    model(rng.uniform(-1, 1, (2, 299, 299, 3)).astype(np.float32), training=True)
    for layer in batch_norms:
        layer.momentum = 0.99
    write_keras2_h5(model, path)
    return path, model


def pointed_at(entry: WeightsEntry, path: Path) -> WeightsEntry:
    """`entry` for the test file: its name and its md5, as Keras publishes md5 (not a bypassed check)."""
    digest = hashlib.md5(path.read_bytes()).hexdigest()
    return dataclasses.replace(entry, file_name=path.name, checksum=Checksum("md5", digest, "the test file"))


class FileServer:
    """Serves `files` (name -> bytes) on 127.0.0.1. `mode`: "ok", "corrupt" (one byte changed) or
    "truncated" (announces the full length, sends half, closes). `requests` counts GETs."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files, self.mode, self.requests = files, "ok", 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                server.requests += 1
                body = server.files.get(self.path.rsplit("/", 1)[-1])
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.mode == "corrupt":
                    body = body[:1000] + bytes([body[1000] ^ 0xFF]) + body[1001:]
                elif server.mode == "truncated":
                    body = body[: len(body) // 2]
                    self.close_connection = True
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/weights"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
