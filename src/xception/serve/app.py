"""The server's routes (FastAPI): the Open Inference Protocol's REST endpoints, `/predict`, the page
and `/metrics`. Every refused request gets a 4xx (503 for a full queue) whose JSON body is the
protocol's {"error": message}; the server reads nothing from a path a client names and unpickles
nothing.

Endpoints:
- GET  /v2/health/live, /v2/health/ready: 200 while live / ready (ready: the batcher runs);
- GET  /v2: server metadata; GET /v2/models/{name}[/versions/{v}]: the model's inputs and outputs;
- GET  /v2/models/{name}[/versions/{v}]/ready;
- POST /v2/models/{name}[/versions/{v}]/infer: see `xception.serve.protocol`;
- POST /predict[?top_k=K&heatmap=true]: an encoded image as the body -> {"model", "predictions":
  [{"class_name", "probability"}], most probable first; "decision": {"class_names", "probability",
  "reason", "text"} where the weights carry a decision policy (the class decided at their threshold,
  `xception.tasks.decision`); "heatmap": a PNG data URL where the server was given a heatmap renderer};
- GET  /: the page; GET /metrics: Prometheus' text format.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from importlib import resources

import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException

from xception.data.images import UnreadableImageError
from xception.serve import protocol
from xception.serve.batcher import MicroBatcher, QueueFullError
from xception.serve.config import ServeConfig
from xception.serve.errors import RequestError
from xception.serve.metrics import ServerMetrics
from xception.serve.model import ServedModel
from xception.tasks.decision import decision_text

log = logging.getLogger(__name__)

# A class activation map for the page: (the model input (C, H, W) in [-1, 1], a class index) -> a PNG
# of the map over the image. `create_app(..., heatmap=renderer)` is the one place it plugs in.
HeatmapRenderer = Callable[[torch.Tensor, int], bytes]


def create_app(served: ServedModel, config: ServeConfig, *, heatmap: HeatmapRenderer | None = None) -> FastAPI:
    """The server's application for `served`, batching and bounding requests as `config` says."""
    metrics = ServerMetrics(max_batch_size=config.max_batch_size)
    batcher = MicroBatcher(served.probabilities, max_batch_size=config.max_batch_size,
                           max_delay_s=config.max_delay_ms / 1000, max_queue=config.max_queue,
                           on_batch=metrics.batch_size.observe, on_depth=metrics.queue_depth.set)
    state = {"ready": False}
    heatmap_renderer = heatmap  # `heatmap` is also /predict's query parameter

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        state["ready"] = True
        log.info("serving %s (%d classes, %d px) at /v2/models/%s", served.model_name, len(served.class_names),
                 served.image_size, served.name)
        yield
        # uvicorn has stopped accepting and let in-flight requests finish (or timed out) by now.
        state["ready"] = False
        await batcher.close()

    app = FastAPI(title="xception serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    _add_error_handlers(app)

    @app.middleware("http")
    async def count(request: Request, call_next):
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        metrics.observe_request(getattr(route, "path", "unmatched"), response.status_code, time.perf_counter() - start)
        return response

    def check_model(name: str, version: str | None = None) -> None:
        if name != served.name:
            raise RequestError(404, f"unknown model {name!r}; this server serves {served.name!r}")
        if version is not None:
            raise RequestError(404, f"model {name!r} has no versions; drop /versions/{version}")

    async def infer(images: torch.Tensor) -> torch.Tensor:
        if not state["ready"]:
            raise RequestError(503, "the server is stopping", headers={"Retry-After": "1"})
        return await batcher.submit(images)  # QueueFullError: a 503 with Retry-After (its handler)

    # Requests admitted at once (reading, decoding, queued, running), each holding at most a body of
    # max_body_bytes: past this bound a request gets 503 before its body is read, so that memory stays
    # bounded even where decoding, not inference, is the bottleneck.
    admitted_at_most = config.max_queue + config.max_batch_size
    active = {"requests": 0}

    @asynccontextmanager
    async def admitted():
        if active["requests"] >= admitted_at_most:
            raise QueueFullError(batcher.retry_after())
        active["requests"] += 1
        try:
            yield
        finally:
            active["requests"] -= 1

    def check_room(count: int) -> None:
        """Refuse before decoding what would not fit: a full queue costs the client a round trip only."""
        if count > config.max_batch_size:
            raise RequestError(400, f"the request holds {count} images; at most --max-batch-size "
                               f"{config.max_batch_size} per request")
        if batcher.queued + count > config.max_queue:
            raise QueueFullError(batcher.retry_after())

    async def prepare_all(images: list[bytes]) -> torch.Tensor:
        return torch.stack(await asyncio.gather(*(asyncio.to_thread(served.prepare, data) for data in images)))

    @app.get("/v2/health/live")
    async def live() -> dict:
        return {"live": True}

    @app.get("/v2/health/ready")
    async def ready() -> JSONResponse:
        return JSONResponse({"ready": state["ready"]}, status_code=200 if state["ready"] else 503)

    @app.get("/v2")
    async def server_metadata() -> dict:
        from importlib.metadata import version

        return {"name": "xception", "version": version("xception"), "extensions": ["binary_tensor_data"]}

    @app.get("/v2/models/{name}")
    @app.get("/v2/models/{name}/versions/{version}")
    async def model_metadata(name: str, version: str | None = None) -> dict:
        check_model(name, version)
        c, s, k = served.in_channels, served.image_size, len(served.class_names)
        tensors = [protocol.TensorMetadata(name=protocol.IMAGE_INPUT, datatype="BYTES", shape=[-1])]
        if served.one_preparation:  # an ensemble whose members prepare images differently takes images only
            tensors.append(protocol.TensorMetadata(name=protocol.TENSOR_INPUT, datatype="FP32", shape=[-1, c, s, s]))
        outputs = [protocol.TensorMetadata(name="probabilities", datatype="FP32", shape=[-1, k]),
                   protocol.TensorMetadata(name="top_classes", datatype="BYTES", shape=[-1, -1]),
                   protocol.TensorMetadata(name="top_probabilities", datatype="FP32", shape=[-1, -1])]
        if served.decides:
            outputs += [protocol.TensorMetadata(name="decided", datatype="BOOL", shape=[-1, k]),
                        protocol.TensorMetadata(name="decision", datatype="BYTES", shape=[-1])]
        return {"name": served.name, "versions": [], "platform": f"xception_{served.engine.runtime}",
                "inputs": [t.model_dump() for t in tensors], "outputs": [t.model_dump() for t in outputs],
                "parameters": {"model": served.model_name, "runtime": served.engine.description,
                               "class_names": list(served.class_names), "max_batch_size": config.max_batch_size}}

    @app.get("/v2/models/{name}/ready")
    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def model_ready(name: str, version: str | None = None) -> JSONResponse:
        check_model(name, version)
        return JSONResponse({"name": served.name, "ready": state["ready"]}, status_code=200 if state["ready"] else 503)

    @app.post("/v2/models/{name}/infer")
    @app.post("/v2/models/{name}/versions/{version}/infer")
    async def model_infer(name: str, request: Request, version: str | None = None) -> dict:
        check_model(name, version)
        async with admitted():
            return await answer_infer(request)

    async def answer_infer(request: Request) -> dict:
        body = await _read_body(request, config.max_body_bytes)
        parsed, binary = protocol.parse_request(body, request.headers.get(protocol.BINARY_HEADER))
        tensor = protocol.the_input(parsed)
        decides = served.decides
        outputs = protocol.wanted_outputs(parsed, decides=decides)
        top_k = protocol.requested_top_k(parsed, config.top_k, len(served.class_names))
        if tensor.name == protocol.IMAGE_INPUT:
            encoded = protocol.decode_images(tensor, binary.get(tensor.name))
            check_room(len(encoded))
            images = await prepare_all(encoded)
        else:
            if not served.one_preparation:
                raise RequestError(400, f'this ensemble\'s members prepare images differently ({served.input_shapes_text()}): '
                                        f'send encoded images as the input "{protocol.IMAGE_INPUT}"')
            images = protocol.decode_tensor(tensor, binary.get(tensor.name), in_channels=served.in_channels,
                                            image_size=served.image_size)
            check_room(len(images))
        probabilities = await infer(images)
        answer = protocol.InferenceResponse(
            model_name=served.name, id=parsed.id,
            outputs=protocol.response_outputs(probabilities, served.class_names, top_k=top_k, names=outputs,
                                              decided=served.decide(probabilities) if decides else None))
        return answer.model_dump(exclude_none=True)

    @app.post("/predict")
    async def predict(request: Request, top_k: int | None = None, heatmap: bool = False) -> dict:
        top_k = config.top_k if top_k is None else top_k
        if top_k < 1:
            raise RequestError(400, f"top_k must be >= 1, got {top_k}")
        async with admitted():
            return await answer_predict(request, top_k, heatmap)

    async def answer_predict(request: Request, top_k: int, heatmap: bool) -> dict:
        body = await _read_body(request, config.max_body_bytes)
        if not body:
            raise RequestError(400, "the body is empty; send the image file's bytes as the body")
        check_room(1)
        image = await asyncio.to_thread(served.prepare, body)
        probabilities = (await infer(image[None]))[0]
        values, indices = probabilities.topk(min(top_k, len(served.class_names)))
        answer = {"model": served.name, "predictions": [
            {"class_name": served.class_names[i], "probability": p} for p, i in zip(values.tolist(), indices.tolist(),
                                                                                    strict=True)]}
        decided = served.decide(probabilities[None])
        if decided is not None:  # weights with a decision policy: the decided class (at their threshold) and why
            answer["decision"] = {"class_names": [served.class_names[i] for i in decided[0].classes],
                                  "probability": decided[0].probability, "reason": decided[0].reason,
                                  "text": decision_text(decided[0], served.class_names)}
        if heatmap and heatmap_renderer is not None:
            png = await asyncio.to_thread(heatmap_renderer, image, int(indices[0]))
            answer["heatmap"] = "data:image/png;base64," + base64.b64encode(png).decode()
        return answer

    @app.get("/", response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        return HTMLResponse(resources.files("xception.serve").joinpath("static/index.html").read_text("utf-8"))

    @app.get("/metrics")
    async def metrics_text() -> Response:
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return app


async def _read_body(request: Request, limit: int) -> bytes:
    """The request's body, refused with 413 as soon as it is known to pass `limit` bytes (by its
    Content-Length, or while it streams in when it declares none)."""
    declared = request.headers.get("content-length")
    too_large = f"the body is larger than the server's limit of {limit} bytes (--max-body-mb)"
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, too_large)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, too_large)
        chunks.append(chunk)
    return b"".join(chunks)


def _add_error_handlers(app: FastAPI) -> None:
    def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError) -> JSONResponse:
        return error(exc.status, exc.message, exc.headers)

    @app.exception_handler(QueueFullError)
    async def queue_full(request: Request, exc: QueueFullError) -> JSONResponse:
        return error(503, str(exc), {"Retry-After": str(exc.retry_after_s)})

    @app.exception_handler(UnreadableImageError)
    async def unreadable(request: Request, exc: UnreadableImageError) -> JSONResponse:
        return error(400, f"cannot read the image: {exc.reason}")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem.get("loc", ()))
        return error(400, f"{where}: {problem['msg']}")

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("error answering %s %s", request.method, request.url.path)
        return error(500, f"internal error: {type(exc).__name__}: {exc}")
