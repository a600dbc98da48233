"""The Open Inference Protocol's REST messages (KServe's v2 protocol: kserve.github.io/website, "Open
Inference Protocol (V2 Inference Protocol)") and the tensors this server takes and gives in them.

Inputs, of which a request names exactly one:
- "image", BYTES, shape [N]: N encoded images (any format PIL reads), prepared as the weights were
  evaluated. In JSON each element is a base64 string (JSON has no bytes); with the binary tensor
  data extension (Triton's, used by tritonclient) the raw bytes follow the JSON, each element
  prefixed by its length as a 4-byte little-endian integer.
- "input", FP32, shape [N, C, H, W]: prepared images in [-1, 1], flat or nested row-major in JSON,
  or raw little-endian float32 with the binary extension.
Outputs (all by default, or those named in "outputs"):
- "probabilities", FP32 [N, num_classes]; "top_classes", BYTES [N, k], the class names most probable
  first; "top_probabilities", FP32 [N, k]. k is the request parameter "top_k" (default: the server's).
- Where the weights carry a decision policy (`xception calibrate`, or training with a validation
  split): "decided", BOOL [N, num_classes], the classes decided at the policy's threshold (one per
  row for single-label weights, any number for multi-label ones); "decision", BYTES [N], each
  decision in words ("face, probability 0.83 (p(face) 0.83 >= threshold 0.37 (EER on 40 validation
  images))"). Asking for them from weights without a policy is a 400 that says so.
Answers are always JSON.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ValidationError

from xception.serve.errors import RequestError
from xception.tasks.decision import Decided, decision_text

IMAGE_INPUT, TENSOR_INPUT = "image", "input"
OUTPUTS = ("probabilities", "top_classes", "top_probabilities")
DECISION_OUTPUTS = ("decided", "decision")  # only where the weights carry a decision policy
# Triton's binary tensor data extension: the JSON header's length when binary data follows it.
BINARY_HEADER = "inference-header-content-length"


class RequestInput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class RequestOutput(BaseModel):
    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequest(BaseModel):
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any]


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    outputs: list[ResponseOutput]


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


def parse_request(body: bytes, header_length: str | None) -> tuple[InferenceRequest, dict[str, bytes]]:
    """The request in `body` and the binary data of each of its inputs that has some (by input
    name); `header_length` is the Inference-Header-Content-Length header, when binary data follows."""
    header, rest = body, b""
    if header_length is not None:
        try:
            length = int(header_length)
        except ValueError:
            raise RequestError(400, f"{BINARY_HEADER} must be an integer, got {header_length!r}") from None
        if not 0 <= length <= len(body):
            raise RequestError(400, f"{BINARY_HEADER} is {length} but the body has {len(body)} bytes")
        header, rest = body[:length], body[length:]
    try:
        request = InferenceRequest.model_validate_json(header)
    except ValidationError as error:
        raise RequestError(400, f"not an inference request: {_first_problem(error)}") from None
    binary: dict[str, bytes] = {}
    for tensor in request.inputs:
        size = (tensor.parameters or {}).get("binary_data_size")
        if size is None:
            continue
        if not isinstance(size, int) or size < 0 or size > len(rest):
            raise RequestError(400, f"input {tensor.name!r}: binary_data_size {size!r} does not fit the "
                               f"{len(rest)} bytes of binary data left")
        binary[tensor.name], rest = rest[:size], rest[size:]
    if rest:
        raise RequestError(400, f"{len(rest)} bytes of binary data belong to no input")
    return request, binary


def _first_problem(error: ValidationError) -> str:
    problem = error.errors()[0]
    where = ".".join(str(part) for part in problem.get("loc", ())) or "the body"
    return f"{where}: {problem['msg']}"


def the_input(request: InferenceRequest) -> RequestInput:
    """The request's one input, which must be "image" or "input"."""
    names = [tensor.name for tensor in request.inputs]
    if len(names) != 1 or names[0] not in (IMAGE_INPUT, TENSOR_INPUT):
        raise RequestError(400, f"a request has exactly one input, {IMAGE_INPUT!r} (BYTES: encoded images) or "
                           f"{TENSOR_INPUT!r} (FP32: prepared images); got {names}")
    return request.inputs[0]


def decode_images(tensor: RequestInput, binary: bytes | None) -> list[bytes]:
    """The encoded images of a BYTES input of shape [N] (or [N, 1])."""
    _check_datatype(tensor, "BYTES")
    if len(tensor.shape) not in (1, 2) or (len(tensor.shape) == 2 and tensor.shape[1] != 1) or tensor.shape[0] < 1:
        raise RequestError(400, f"input {tensor.name!r} has shape {tensor.shape}; expected [N], one encoded image "
                           "per element")
    count = tensor.shape[0]
    if binary is not None:
        elements = _length_prefixed(tensor.name, binary)
    else:
        if tensor.data is None:
            raise RequestError(400, f"input {tensor.name!r} has neither data nor binary_data_size")
        elements = [_base64(tensor.name, i, item) for i, item in enumerate(_flatten(tensor.data))]
    if len(elements) != count:
        raise RequestError(400, f"input {tensor.name!r} has shape {tensor.shape} but holds {len(elements)} elements")
    return elements


def _length_prefixed(name: str, data: bytes) -> list[bytes]:
    elements, offset = [], 0
    while offset < len(data):
        if offset + 4 > len(data):
            raise RequestError(400, f"input {name!r}: binary BYTES data ends inside an element's 4-byte length")
        (length,) = struct.unpack_from("<I", data, offset)
        offset += 4
        if offset + length > len(data):
            raise RequestError(400, f"input {name!r}: an element of {length} bytes runs past the binary data")
        elements.append(data[offset:offset + length])
        offset += length
    return elements


def _base64(name: str, index: int, item: Any) -> bytes:
    if not isinstance(item, str):
        raise RequestError(400, f"input {name!r} element {index} is a {type(item).__name__}; BYTES elements in "
                           "JSON are base64 strings")
    try:
        return base64.b64decode(item, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(400, f"input {name!r} element {index} is not valid base64") from None


def decode_tensor(tensor: RequestInput, binary: bytes | None, *, in_channels: int, image_size: int) -> torch.Tensor:
    """The (N, C, H, W) float32 images of an FP32 input, whose shape must be [N, C, H, W] with the
    model's channels and size, and whose values must be finite."""
    _check_datatype(tensor, "FP32")
    expected = [in_channels, image_size, image_size]
    if len(tensor.shape) != 4 or tensor.shape[1:] != expected or tensor.shape[0] < 1:
        raise RequestError(400, f"input {tensor.name!r} has shape {tensor.shape}; the model takes "
                           f"[N, {', '.join(map(str, expected))}]")
    count = int(np.prod(tensor.shape))
    if binary is not None:
        if len(binary) != 4 * count:
            raise RequestError(400, f"input {tensor.name!r}: {len(binary)} bytes of binary data, shape "
                               f"{tensor.shape} needs {4 * count}")
        values = np.frombuffer(binary, dtype="<f4").astype(np.float32)
    else:
        if tensor.data is None:
            raise RequestError(400, f"input {tensor.name!r} has neither data nor binary_data_size")
        try:
            values = np.asarray(_flatten(tensor.data), dtype=np.float32)
        except (TypeError, ValueError):
            raise RequestError(400, f"input {tensor.name!r}: FP32 data must be numbers") from None
        if values.size != count:
            raise RequestError(400, f"input {tensor.name!r} has shape {tensor.shape} ({count} values) but holds "
                               f"{values.size}")
    if not np.isfinite(values).all():
        raise RequestError(400, f"input {tensor.name!r} holds NaN or infinite values")
    return torch.from_numpy(values.reshape(tensor.shape).copy())


def _check_datatype(tensor: RequestInput, datatype: str) -> None:
    if tensor.datatype != datatype:
        raise RequestError(400, f"input {tensor.name!r} has datatype {tensor.datatype}; it must be {datatype}")


def _flatten(data: list[Any]) -> list[Any]:
    """Row-major elements of a flat or nested JSON list."""
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def wanted_outputs(request: InferenceRequest, *, decides: bool) -> tuple[str, ...]:
    """The outputs the request names (all when it names none); `decides`: the weights carry a
    decision policy, so the decision outputs exist."""
    valid = OUTPUTS + DECISION_OUTPUTS if decides else OUTPUTS
    if not request.outputs:
        return valid
    names = [o.name for o in request.outputs]
    if not decides and any(name in DECISION_OUTPUTS for name in names):
        raise RequestError(400, f"outputs {[n for n in names if n in DECISION_OUTPUTS]} need a decision policy, and "
                                "these weights carry none (argmax); fit one with `xception calibrate`")
    unknown = [name for name in names if name not in valid]
    if unknown:
        raise RequestError(400, f"unknown outputs {unknown}; valid: {', '.join(valid)}")
    return tuple(names)


def requested_top_k(request: InferenceRequest, default: int, num_classes: int) -> int:
    value = (request.parameters or {}).get("top_k", default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise RequestError(400, f"parameter top_k must be an integer >= 1, got {json.dumps(value)}")
    return min(value, num_classes)


def response_outputs(probabilities: torch.Tensor, class_names: tuple[str, ...], *, top_k: int,
                     names: tuple[str, ...], decided: list[Decided] | None = None) -> list[ResponseOutput]:
    """The outputs `names` for (N, num_classes) `probabilities`, and the `decided` rows' decision
    outputs where the weights carry a policy."""
    values, indices = probabilities.topk(top_k, dim=1)
    count = len(probabilities)
    if decided is not None:
        chosen = [[i in row.classes for i in range(len(class_names))] for row in decided]
        decision_outputs = {
            "decided": ResponseOutput(name="decided", shape=[count, len(class_names)], datatype="BOOL",
                                      data=[flag for row in chosen for flag in row]),
            "decision": ResponseOutput(name="decision", shape=[count], datatype="BYTES",
                                       data=[decision_text(row, class_names) for row in decided]),
        }
    available = {
        "probabilities": lambda: ResponseOutput(name="probabilities", shape=list(probabilities.shape), datatype="FP32",
                                                data=probabilities.flatten().tolist()),
        "top_classes": lambda: ResponseOutput(name="top_classes", shape=[count, top_k], datatype="BYTES",
                                              data=[class_names[i] for i in indices.flatten().tolist()]),
        "top_probabilities": lambda: ResponseOutput(name="top_probabilities", shape=[count, top_k], datatype="FP32",
                                                    data=values.flatten().tolist()),
    }
    if decided is not None:
        available.update({name: (lambda output=output: output) for name, output in decision_outputs.items()})
    return [available[name]() for name in names]
