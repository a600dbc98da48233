"""`xception serve` as a client meets it: a real server process on a loopback port, spoken to in plain
HTTP and with tritonclient (an independent Open Inference Protocol client). Its answers are checked
against `xception predict`'s pipeline run in this process on scikit-image's photographs."""

from __future__ import annotations

import base64
import re
import struct
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import torch

from serving import ServerProcess, write_photos, write_tiny_weights
from xception.deploy.runtimes import missing_modules

pytestmark = pytest.mark.slow
NAME = "xception_small"


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return write_tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.safetensors")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    return write_photos(tmp_path_factory.mktemp("photos"))


@pytest.fixture(scope="module")
def server(weights):
    """One fp32 PyTorch server shared by the tests that do not stop it; small limits to test them."""
    with ServerProcess(weights, "--runtime", "torch", "--precision", "fp32", "--max-body-mb", "1") as running:
        yield running


def reference(weights: Path, photos: list[Path], runtime: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(the prepared photos (N, C, H, W), their probabilities (N, classes)), computed as `xception
    predict --runtime RUNTIME --precision fp32` computes them."""
    from xception.inference.session import InferenceSession
    from xception.tasks.predict import predict

    session = InferenceSession.open(str(weights), runtime=runtime, precision="fp32", device="cpu")
    images = torch.stack([session.prepare(p) for p in photos])
    names = list(session.class_names)
    rows = predict(session.engine, images, class_names=names, top_k=len(names))
    probabilities = torch.tensor([[dict(row)[name] for name in names] for row in rows])
    return images, probabilities


def top5(probabilities: torch.Tensor) -> list[tuple[str, float]]:
    values, indices = probabilities.topk(5)
    return [(f"class {i}", v) for v, i in zip(values.tolist(), indices.tolist(), strict=True)]


def assert_same_rows(got: list[tuple[str, float]], expected: list[tuple[str, float]]) -> None:
    assert [name for name, _ in got] == [name for name, _ in expected]
    assert [p for _, p in got] == pytest.approx([p for _, p in expected], abs=1e-5)


@pytest.mark.parametrize("runtime", ["torch", "onnxruntime", "openvino"])
def test_serve_answers_as_xception_predict(runtime, weights, photos):
    missing = missing_modules(runtime)
    if missing:
        pytest.skip(f"runtime {runtime} needs {', '.join(missing)}")
    images, expected = reference(weights, photos, runtime)
    with ServerProcess(weights, "--runtime", runtime, "--precision", "fp32") as running:
        for path, row in zip(photos, expected, strict=True):
            answer = httpx.post(f"{running.url}/predict", content=path.read_bytes(), timeout=60).json()
            assert_same_rows([(p["class_name"], p["probability"]) for p in answer["predictions"]], top5(row))
        encoded = [base64.b64encode(p.read_bytes()).decode() for p in photos]
        by_bytes = infer(running.url, {"name": "image", "shape": [len(photos)], "datatype": "BYTES", "data": encoded})
        by_tensor = infer(running.url, {"name": "input", "shape": list(images.shape), "datatype": "FP32",
                                        "data": images.flatten().tolist()})
    for answer in (by_bytes, by_tensor):
        outputs = {o["name"]: o for o in answer["outputs"]}
        assert outputs["probabilities"]["shape"] == list(expected.shape)
        got = torch.tensor(outputs["probabilities"]["data"]).reshape(expected.shape)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
        names = outputs["top_classes"]["data"]
        values = outputs["top_probabilities"]["data"]
        for i, row in enumerate(expected):
            assert_same_rows(list(zip(names[5 * i:5 * i + 5], values[5 * i:5 * i + 5], strict=True)), top5(row))


def infer(url: str, tensor: dict, **request) -> dict:
    response = httpx.post(f"{url}/v2/models/{NAME}/infer", json={"inputs": [tensor], **request}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def test_serve_predict_agrees_with_the_printed_predictions_of_xception_predict(server, weights, photos, capsys):
    from xception.cli import main

    assert main(["predict", *map(str, photos), "--weights", str(weights), "--runtime", "torch",
                 "--precision", "fp32", "--device", "cpu"]) == 0
    printed = re.findall(r"^\s+([0-9.]+)\s+(class \d+)$", capsys.readouterr().out, flags=re.MULTILINE)
    served = []
    for path in photos:
        answer = httpx.post(f"{server.url}/predict", content=path.read_bytes(), timeout=60).json()
        served += [(f"{p['probability']:.4f}", p["class_name"]) for p in answer["predictions"]]
    assert served == printed


def test_serve_protocol_client_tritonclient_infers_bytes_and_fp32(server, weights, photos):
    """tritonclient sends the binary tensor data extension (raw bytes after the JSON header)."""
    http = pytest.importorskip("tritonclient.http", reason="pip install 'tritonclient[http]'")
    import numpy as np

    images, expected = reference(weights, photos, "torch")
    client = http.InferenceServerClient(url=server.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(NAME)
    metadata = client.get_model_metadata(NAME)
    assert {t["name"]: t["datatype"] for t in metadata["inputs"]} == {"image": "BYTES", "input": "FP32"}
    assert metadata["outputs"][0] == {"name": "probabilities", "datatype": "FP32", "shape": [-1, 7]}
    encoded = http.InferInput("image", [len(photos)], "BYTES")
    encoded.set_data_from_numpy(np.array([p.read_bytes() for p in photos], dtype=np.object_), binary_data=True)
    prepared = http.InferInput("input", list(images.shape), "FP32")
    prepared.set_data_from_numpy(images.numpy(), binary_data=True)
    for tensor in (encoded, prepared):
        result = client.infer(NAME, [tensor])
        torch.testing.assert_close(torch.from_numpy(result.as_numpy("probabilities")), expected, atol=1e-5, rtol=0)
        top = result.as_numpy("top_classes")
        assert top.shape == (len(photos), 5)
        assert list(top[0]) == [name for name, _ in top5(expected[0])]
    with pytest.raises(Exception, match="unknown model 'resnet'"):
        client.infer("resnet", [prepared])


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height pixels and holds none: PIL's decompression-bomb guard must
    refuse it from the header alone."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + \
        chunk(b"IEND", b"")


BAD_REQUESTS = {  # name: (method, path, body or JSON, status, words the error must contain)
    "not_an_image": ("/predict", b"hello, not an image", 400, "not recognise it as an image"),
    "empty_body": ("/predict", b"", 400, "body is empty"),
    "truncated_jpeg": ("/predict", "truncated", 400, "cannot read the image"),
    "decompression_bomb": ("/predict", _png_header_only(30000, 30000), 400, "decompression bomb"),
    "oversized_body": ("/predict", b"\xff" * (1024 * 1024 + 1), 413, "larger than the server's limit"),
    "negative_top_k": ("/predict?top_k=0", "photo", 400, "top_k must be >= 1"),
    "top_k_not_a_number": ("/predict?top_k=five", "photo", 400, "top_k"),
    "unknown_model": ("/v2/models/resnet/infer", {"inputs": []}, 404, "unknown model 'resnet'"),
    "unknown_model_metadata": ("/v2/models/resnet", None, 404, "unknown model"),
    "unknown_path": ("/v3/anything", None, 404, "Not Found"),
    "not_json": (f"/v2/models/{NAME}/infer", b"{inputs: oops", 400, "not an inference request"),
    "no_inputs_field": (f"/v2/models/{NAME}/infer", {"id": "1"}, 400, "inputs"),
    "two_inputs": (f"/v2/models/{NAME}/infer", {"inputs": [
        {"name": "image", "shape": [1], "datatype": "BYTES", "data": ["aGk="]},
        {"name": "input", "shape": [1], "datatype": "FP32", "data": [0.0]}]}, 400, "exactly one input"),
    "wrong_datatype": (f"/v2/models/{NAME}/infer", {"inputs": [
        {"name": "input", "shape": [1, 3, 32, 32], "datatype": "FP64", "data": [0.0] * 3072}]}, 400,
        "datatype FP64; it must be FP32"),
    "wrong_shape": (f"/v2/models/{NAME}/infer", {"inputs": [
        {"name": "input", "shape": [1, 3, 28, 28], "datatype": "FP32", "data": [0.0] * 2352}]}, 400,
        "the model takes [N, 3, 32, 32]"),
    "shape_and_data_disagree": (f"/v2/models/{NAME}/infer", {"inputs": [
        {"name": "input", "shape": [2, 3, 32, 32], "datatype": "FP32", "data": [0.0] * 3072}]}, 400,
        "holds 3072"),
    "nan_input": (f"/v2/models/{NAME}/infer", {"inputs": [
        {"name": "input", "shape": [1, 3, 32, 32], "datatype": "FP32", "data": ["NaN"] + [0.0] * 3071}]}, 400,
        "NaN or infinite"),
    "bytes_not_base64": (f"/v2/models/{NAME}/infer", {"inputs": [
        {"name": "image", "shape": [1], "datatype": "BYTES", "data": ["not base64!"]}]}, 400, "not valid base64"),
    "bytes_not_an_image": (f"/v2/models/{NAME}/infer", {"inputs": [
        {"name": "image", "shape": [1], "datatype": "BYTES", "data": ["aGVsbG8="]}]}, 400, "cannot read the image"),
    "too_many_images": (f"/v2/models/{NAME}/infer", {"inputs": [
        {"name": "image", "shape": [17], "datatype": "BYTES", "data": ["aGk="] * 17}]}, 400, "at most --max-batch-size"),
    "unknown_output": (f"/v2/models/{NAME}/infer", {"inputs": [
        {"name": "input", "shape": [1, 3, 32, 32], "datatype": "FP32", "data": [0.0] * 3072}],
        "outputs": [{"name": "logits"}]}, 400, "unknown outputs ['logits']"),
    "decision_without_a_policy": (f"/v2/models/{NAME}/infer", {"inputs": [
        {"name": "input", "shape": [1, 3, 32, 32], "datatype": "FP32", "data": [0.0] * 3072}],
        "outputs": [{"name": "decided"}]}, 400, "these weights carry none (argmax); fit one with `xception calibrate`"),
    "binary_size_past_the_body": (f"/v2/models/{NAME}/infer", "binary", 400, "does not fit"),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_serve_bad_request_gets_its_4xx_and_the_server_still_answers(case, server, photos):
    path, body, status, words = BAD_REQUESTS[case]
    headers = {}
    if body == "truncated":
        body = photos[0].read_bytes()[:2000]
    elif body == "photo":
        body = photos[0].read_bytes()
    elif body == "binary":
        header = b'{"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 99}}]}'
        body, headers = header + b"\x00" * 10, {"Inference-Header-Content-Length": str(len(header))}
    if body is None:
        response = httpx.get(server.url + path, timeout=30)
    elif isinstance(body, dict):
        response = httpx.post(server.url + path, json=body, timeout=30)
    else:
        response = httpx.post(server.url + path, content=body, headers=headers, timeout=30)
    assert response.status_code == status, response.text
    assert words in response.json()["error"]
    assert httpx.post(f"{server.url}/predict", content=photos[1].read_bytes(), timeout=30).status_code == 200


def test_serve_body_without_length_is_cut_at_the_limit(server):
    """A chunked body (no Content-Length) is refused once it passes the limit, not read whole."""
    def chunks():
        for _ in range(64):
            yield b"\x00" * 65536  # 4 MiB in all, past the 1 MiB limit

    response = httpx.post(f"{server.url}/predict", content=chunks(), timeout=30)
    assert response.status_code == 413
    assert httpx.get(f"{server.url}/v2/health/live", timeout=30).status_code == 200


def test_serve_metadata_and_health_endpoints(server):
    assert httpx.get(f"{server.url}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{server.url}/v2/health/ready").json() == {"ready": True}
    assert httpx.get(f"{server.url}/v2/models/{NAME}/ready").status_code == 200
    assert httpx.get(f"{server.url}/v2").json()["name"] == "xception"
    metadata = httpx.get(f"{server.url}/v2/models/{NAME}").json()
    assert metadata["parameters"]["class_names"] == [f"class {k}" for k in range(7)]
    assert metadata["inputs"][1] == {"name": "input", "datatype": "FP32", "shape": [-1, 3, 32, 32]}


def test_serve_metrics_count_requests_latency_batches_and_queue(server, photos):
    before = _metric(server.url, 'xception_requests_total{endpoint="/predict",status="200"}')
    for _ in range(3):
        httpx.post(f"{server.url}/predict", content=photos[0].read_bytes(), timeout=30)
    httpx.post(f"{server.url}/predict", content=b"junk", timeout=30)
    assert _metric(server.url, 'xception_requests_total{endpoint="/predict",status="200"}') == before + 3
    assert _metric(server.url, 'xception_requests_total{endpoint="/predict",status="400"}') >= 1
    assert _metric(server.url, 'xception_request_duration_seconds_count{endpoint="/predict"}') >= before + 4
    assert _metric(server.url, 'xception_batch_size_bucket{le="16.0"}') >= 3
    assert _metric(server.url, "xception_queue_depth") == 0


def _metric(url: str, sample: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    return 0.0


def test_serve_full_queue_answers_503_with_retry_after_and_answers_the_rest(weights):
    """A queue of 2 images, batches of 1: a burst of 48 requests overflows it; each request gets its
    answer or a 503 with Retry-After, none fails otherwise."""
    tensor = {"name": "input", "shape": [1, 3, 32, 32], "datatype": "FP32", "data": [0.5] * 3072}
    with ServerProcess(weights, "--runtime", "torch", "--precision", "fp32", "--max-batch-size", "1",
                       "--max-queue", "2", "--max-delay-ms", "0") as running:
        def post(_):
            return httpx.post(f"{running.url}/v2/models/{NAME}/infer", json={"inputs": [tensor]}, timeout=60)

        statuses, retry_after = [], set()
        for _ in range(5):  # bursts until one overflows (the first does on any machine seen)
            with ThreadPoolExecutor(48) as pool:
                responses = list(pool.map(post, range(48)))
            statuses += [r.status_code for r in responses]
            retry_after |= {r.headers.get("retry-after") for r in responses if r.status_code == 503}
            if 503 in statuses:
                break
        assert set(statuses) == {200, 503}
        assert all(value is not None and int(value) >= 1 for value in retry_after)
        assert httpx.get(f"{running.url}/v2/health/ready").status_code == 200


def test_serve_sigterm_finishes_requests_in_flight_and_exits_0(weights, photos):
    """Requests wait 4 s for a batch to fill; SIGTERM comes while they wait. Each must be answered
    and the process must exit 0."""
    with ServerProcess(weights, "--runtime", "torch", "--precision", "fp32", "--max-batch-size", "32",
                       "--max-queue", "64", "--max-delay-ms", "4000") as running:
        results: list[int] = []

        def post() -> None:
            results.append(httpx.post(f"{running.url}/predict", content=photos[0].read_bytes(), timeout=60).status_code)

        clients = [threading.Thread(target=post) for _ in range(6)]
        for client in clients:
            client.start()
        deadline = time.monotonic() + 30
        while _metric(running.url, "xception_queue_depth") < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _metric(running.url, "xception_queue_depth") == 6
        status, output = running.stop()
        for client in clients:
            client.join()
    assert results == [200] * 6
    assert status == 0, output
    assert "Application shutdown complete" in output


def test_serve_heatmap_renderer_answers_with_the_map_of_the_top_class(weights, photos):
    """The hook for class activation maps: `create_app(..., heatmap=renderer)` puts the renderer's PNG
    of the top class into /predict's answer, which the page shows."""
    import io

    from fastapi.testclient import TestClient
    from PIL import Image

    from xception.serve.app import create_app
    from xception.serve.config import ServeConfig
    from xception.serve.model import load_served_model

    served = load_served_model(str(weights), runtime="torch", precision="fp32", device="cpu")
    calls = []

    def renderer(image: torch.Tensor, class_index: int) -> bytes:
        calls.append((tuple(image.shape), class_index))
        out = io.BytesIO()
        Image.new("RGB", (4, 4), (255, 0, 0)).save(out, format="PNG")
        return out.getvalue()

    with TestClient(create_app(served, ServeConfig(), heatmap=renderer)) as client:
        plain = client.post("/predict", content=photos[0].read_bytes()).json()
        assert "heatmap" not in plain and calls == []
        answer = client.post("/predict?heatmap=true", content=photos[0].read_bytes()).json()
    top = int(answer["predictions"][0]["class_name"].split()[-1])
    assert calls == [((3, 32, 32), top)]
    png = base64.b64decode(answer["heatmap"].removeprefix("data:image/png;base64,"))
    assert Image.open(io.BytesIO(png)).getpixel((0, 0)) == (255, 0, 0)


def test_cli_serve_refuses_a_port_in_use_and_a_queue_smaller_than_a_batch(server, weights, capsys):
    from xception.cli import main

    assert main(["serve", "--weights", str(weights), "--max-batch-size", "16", "--max-queue", "8"]) == 2
    assert "max-queue (8) must be >= max-batch-size (16)" in capsys.readouterr().err
    port = server.url.rsplit(":", 1)[1]
    assert main(["serve", "--weights", str(weights), "--runtime", "torch", "--precision", "fp32", "--device", "cpu",
                 "--port", port]) == 2
    assert f"could not serve on 127.0.0.1:{port}" in capsys.readouterr().err


def test_serve_page_heatmap_is_the_grad_cam_overlay_of_the_top_class(server, weights, photos):
    """`xception serve` (Grad-CAM by default) answers /predict?heatmap=true with the picture that
    `xception.explain` and its overlay make of the same image and class."""
    import io

    import numpy as np
    from PIL import Image

    from xception.explain import explain
    from xception.explain.overlay import overlay
    from xception.models.trained import open_weights

    answer = httpx.post(f"{server.url}/predict?heatmap=true", content=photos[0].read_bytes(), timeout=120).json()
    png = base64.b64decode(answer["heatmap"].removeprefix("data:image/png;base64,"))
    images, probabilities = reference(weights, photos[:1], "torch")
    top = int(probabilities[0].argmax())
    assert answer["predictions"][0]["class_name"] == f"class {top}"
    model, _, _ = open_weights(str(weights))
    expected = overlay(images[0], explain(model, images, [top], method="gradcam").maps[0])
    got = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=int)
    assert got.shape == np.asarray(expected).shape
    assert np.abs(got - np.asarray(expected, dtype=int)).max() <= 1  # a rounding of the map at most
