"""int8 the onnxruntime way: its own static quantizer (`onnxruntime.quantization`) with the settings
of its CPU guide, and a check, by doing it, that the installed onnxruntime runs what it makes.

Below `xception.deploy.runtimes` (whose availability check asks `int8_failure`): it imports nothing
else of `xception.deploy`.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from xception.runtime import cpu_flags

# CPU flags with 8-bit dot products (VNNI): the int8 kernels' fast path, free of U8S8 saturation.
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def quantize_options() -> dict[str, Any]:
    """The settings of `quantize_static` here, as onnxruntime's CPU quantization guide gives them:
    the QDQ format, int8 weights per output channel and uint8 activations (U8S8, what its VNNI
    kernels take). Without VNNI, U8S8's 16-bit intermediate sums can saturate, and the guide's
    remedy is 7-bit weights (`reduce_range`)."""
    from onnxruntime.quantization import QuantFormat, QuantType

    return dict(quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8, reduce_range=not any(flag in cpu_flags() for flag in VNNI_FLAGS))


def quantize_onnx(source: str | os.PathLike, target: str | os.PathLike, inputs: Iterable[np.ndarray]) -> Path:
    """Write to `target` the int8 QDQ model of the fp32 ONNX file `source`, its activation ranges
    calibrated on `inputs` (arrays shaped as the model's first input, one batch each).

    The guide's pre-processing (symbolic shape inference, onnxruntime's graph optimizations) runs
    first, as it asks."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    name = onnx.load(str(source), load_external_data=False).graph.input[0].name

    class Calibration(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter({name: x} for x in inputs)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    # The quantizer logs each of its steps at INFO, which the command line shows; none of them is
    # something a user acts on, so they are held back to warnings while it runs.
    quantizer_log = logging.getLogger("onnxruntime.quantization")
    level = quantizer_log.level
    quantizer_log.setLevel(logging.WARNING)
    try:
        with tempfile.TemporaryDirectory(prefix="xception-ort-int8-") as directory:
            prepared = Path(directory) / "prepared.onnx"
            quant_pre_process(str(source), str(prepared))
            quantize_static(str(prepared), str(target), Calibration(), **quantize_options())
    finally:
        quantizer_log.setLevel(level)
    model = onnx.load(str(target))
    if requantized_relus_to_lookup(model):
        onnx.save(model, str(target))
    return Path(target)


def requantized_relus_to_lookup(model: Any) -> int:
    """Replace, in the QDQ `model` (an `onnx.ModelProto`, changed in place), each
    `DequantizeLinear -> Relu -> QuantizeLinear` with onnxruntime's `QLinearLeakyRelu` at alpha 0,
    the same function on uint8 (a 256-entry table of requantize(max(x, 0))); returns how many.

    Written here because onnxruntime does not do it. In Xception each of the 11 block inputs is
    the sum of a residual addition that feeds both a ReLU and the skip path, so the ReLU's scale
    differs from the sum's. onnxruntime folds the ReLU into the QuantizeLinear (its zero point
    clamps), but leaves the DequantizeLinear -> QuantizeLinear pair: a requantization in float,
    4.6% of the int8 forward in `benchmarks/int8_profile_onnxruntime.py`. Its QOperator format drops
    these ReLUs altogether (a different function where the sum feeds the skip path too). The lookup
    gives bit-identical outputs (tests/test_deploy.py) and runs in the int8 layout with its neighbours.
    """
    from onnx import helper

    graph = model.graph
    outputs = {output.name for output in graph.output}
    producer = {output: node for node in graph.node for output in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    replaced: dict[int, Any] = {}  # id of the Relu -> its lookup node
    dropped: set[int] = set()  # ids of the nodes the lookups take over
    for node in graph.node:
        if node.op_type != "Relu":
            continue
        before, after = producer.get(node.input[0]), consumers.get(node.output[0], [])
        if before is None or before.op_type != "DequantizeLinear" or len(after) != 1:
            continue
        (quantize,) = after
        if quantize.op_type != "QuantizeLinear" or len(before.input) < 3 or len(quantize.input) < 3:
            continue  # zero points must be explicit: the lookup takes them as inputs
        replaced[id(node)] = helper.make_node(
            "QLinearLeakyRelu", [*before.input[:3], *quantize.input[1:3]], [quantize.output[0]],
            name=f"{node.name}_lookup", domain="com.microsoft", alpha=0.0)
        dropped.add(id(quantize))
        if len(consumers[before.output[0]]) == 1 and before.output[0] not in outputs:
            dropped.add(id(before))  # the ReLU was its one reader
    if not replaced:
        return 0
    nodes = [replaced.get(id(node), node) for node in graph.node if id(node) not in dropped]
    del graph.node[:]
    graph.node.extend(nodes)
    if not any(opset.domain == "com.microsoft" for opset in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return len(replaced)


@functools.cache
def int8_failure() -> str | None:
    """Why onnxruntime cannot run int8 models here, or None where it can: found by doing it, once
    per process, not from a version number. A small network of the layers Xception quantizes (a
    convolution, a depthwise and a pointwise one, ReLUs, residual additions, max pooling) goes
    through `quantize_onnx` (its requantized ReLU becoming the lookup), runs, and is compared with
    its fp32 self.

    (NNCF's int8 ONNX fails in onnxruntime 1.32's QLinearConv; onnxruntime's own quantizer does not.)
    """
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = {"stem": (8, 3, 3, 3), "depthwise": (8, 1, 3, 3), "pointwise": (8, 8, 1, 1), "next": (8, 8, 1, 1)}
    initializers = [numpy_helper.from_array(rng.normal(0, 0.3, shape).astype(np.float32), name)
                    for name, shape in weights.items()]
    nodes = [
        helper.make_node("Conv", ["x", "stem"], ["a"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["b"]),
        helper.make_node("Conv", ["b", "depthwise"], ["c"], group=8, pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["c", "pointwise"], ["d"]),
        helper.make_node("Add", ["d", "b"], ["e"]),
        helper.make_node("Relu", ["e"], ["f"]),  # a block's input: the sum feeds a ReLU and the skip path
        helper.make_node("Conv", ["f", "next"], ["g"]),
        helper.make_node("Add", ["g", "e"], ["h"]),
        helper.make_node("MaxPool", ["h"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
    ]
    graph = helper.make_graph(nodes, "probe", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 8, 8])], initializers)
    inputs = [rng.uniform(-1, 1, (1, 3, 16, 16)).astype(np.float32) for _ in range(4)]

    def run(path: Path) -> np.ndarray:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {"x": inputs[0]})[0]

    with tempfile.TemporaryDirectory(prefix="xception-ort-probe-") as directory:
        fp32 = Path(directory) / "fp32.onnx"
        # Opset 17 at IR version 8, the pair it came with: the installed onnx would stamp its own newest
        # IR version, which an older onnxruntime refuses to load before it gets to int8 at all.
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
        onnx.save(model, fp32)
        try:
            expected, got = run(fp32), run(quantize_onnx(fp32, Path(directory) / "int8.onnx", inputs))
        except Exception as error:  # whatever fails on the runtime's own path means no int8 here
            lines = [line.strip() for line in str(error).splitlines() if line.strip()]
            logging.getLogger(__name__).debug("onnxruntime int8 probe", exc_info=True)
            return f"onnxruntime {onnxruntime.__version__} failed on its own int8 model ({lines[-1] if lines else type(error).__name__})"
    error = float(np.abs(expected - got).max() / np.abs(expected).max())
    if not error < 0.1:  # int8 rounding through a few layers stays within a few percent of the range
        return f"onnxruntime {onnxruntime.__version__}'s int8 model computed something else (error {error:.2f} of its range)"
    return None
