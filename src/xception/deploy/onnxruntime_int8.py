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

from xception.cpu import cpu_has_vnni


def quantize_options() -> dict[str, Any]:
    """The settings of `quantize_static` here, as onnxruntime's CPU quantization guide gives them:
    the QDQ format, int8 weights per output channel and uint8 activations (U8S8, what its VNNI
    kernels take). Without VNNI, U8S8's 16-bit intermediate sums can saturate, and the guide's
    remedy is 7-bit weights (`reduce_range`)."""
    from onnxruntime.quantization import QuantFormat, QuantType

    return dict(quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8, reduce_range=not cpu_has_vnni())


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
    if int8_rewrites(model):
        onnx.save(model, str(target))
    return Path(target)


# Written here because onnxruntime does neither (1.32): two rewrites of the quantizer's QDQ model that
# keep in int8 what onnxruntime's graph optimizer leaves in float. The ReLU lookup computes the same
# uint8 values exactly; the int8 mean sums in integers where the float one sums in floats, so a value
# on a rounding tie could come out one step apart. On the test model and the benchmark's `xception`
# the logits are bit-identical (tests/test_deploy.py checks); `benchmarks/int8_profile_onnxruntime.py`
# measures what the rewrites remove.


class _Index:
    """Who writes and who reads each tensor of an ONNX graph."""

    def __init__(self, graph: Any, shapes: Any) -> None:
        self.graph = graph
        self.ranks = {v.name: len(v.type.tensor_type.shape.dim) for v in shapes.value_info
                      if v.type.tensor_type.HasField("shape")}
        self.producer = {output: node for node in graph.node for output in node.output}
        self.consumers: dict[str, list] = {}
        for node in graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.outputs = {output.name for output in graph.output}

    def before(self, node: Any, op_type: str) -> Any | None:
        """The node of `op_type` that writes `node`'s first input, if that is what writes it."""
        found = self.producer.get(node.input[0])
        return found if found is not None and found.op_type == op_type else None

    def after(self, node: Any, op_type: str) -> Any | None:
        """The node of `op_type` that is the one reader of `node`'s output, if that is who reads it."""
        readers = self.consumers.get(node.output[0], [])
        return readers[0] if len(readers) == 1 and readers[0].op_type == op_type else None

    def only_reader(self, node: Any, reader: Any) -> bool:
        """Whether `reader` is the one node that reads `node`'s output (so `node` goes with it)."""
        return self.consumers.get(node.output[0]) == [reader] and node.output[0] not in self.outputs

    def constant(self, name: str) -> np.ndarray | None:
        from onnx import numpy_helper

        for tensor in self.graph.initializer:
            if tensor.name == name:
                return numpy_helper.to_array(tensor)
        return None


def int8_rewrites(model: Any) -> int:
    """Apply both rewrites to the QDQ `model` (an `onnx.ModelProto`, changed in place); returns how
    many places changed."""
    import onnx
    from onnx import helper

    index = _Index(model.graph, onnx.shape_inference.infer_shapes(model).graph)
    replaced: dict[int, list] = {}  # id of a node -> the nodes that take its place
    dropped: set[int] = set()  # ids of the nodes the new ones take over
    for rewrite in (_requantized_relu_to_lookup, _global_mean_to_int8):
        for node in model.graph.node:
            if id(node) not in replaced and id(node) not in dropped:
                found = rewrite(index, node)
                if found is not None:
                    new, gone = found
                    replaced[id(node)] = new
                    dropped.update(id(other) for other in gone)
    if not replaced:
        return 0
    nodes = [new for node in model.graph.node if id(node) not in dropped for new in replaced.get(id(node), [node])]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    if not any(opset.domain == "com.microsoft" for opset in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return len(replaced)


def _requantized_relu_to_lookup(index: _Index, relu: Any) -> tuple[list, list] | None:
    """`DequantizeLinear -> Relu -> QuantizeLinear` as onnxruntime's `QLinearLeakyRelu` at alpha 0,
    the same function on uint8 (a 256-entry table of requantize(max(x, 0))).

    In Xception each of the 11 block inputs is a residual sum that feeds both a ReLU and the skip
    path, so the ReLU's scale differs from the sum's. onnxruntime folds the ReLU into the
    QuantizeLinear (its zero point clamps) but leaves the DequantizeLinear -> QuantizeLinear pair: a
    requantization in float, 4.6% of the int8 forward in the profile. (Its QOperator format drops
    these ReLUs altogether: another function, where the sum feeds the skip path too.)"""
    from onnx import helper

    if relu.op_type != "Relu":
        return None
    dequantize, quantize = index.before(relu, "DequantizeLinear"), index.after(relu, "QuantizeLinear")
    if dequantize is None or quantize is None or len(dequantize.input) < 3 or len(quantize.input) < 3:
        return None  # zero points must be explicit: the lookup takes them as inputs
    lookup = helper.make_node("QLinearLeakyRelu", [*dequantize.input[:3], *quantize.input[1:3]], [quantize.output[0]],
                              name=f"{relu.output[0]}_int8", domain="com.microsoft", alpha=0.0)
    return [lookup], [quantize, *([dequantize] if index.only_reader(dequantize, relu) else [])]


def _global_mean_to_int8(index: _Index, mean: Any) -> tuple[list, list] | None:
    """`DequantizeLinear -> ReduceMean over H, W -> [Reshape ->] QuantizeLinear` (global average
    pooling as PyTorch exports it) as onnxruntime's `QLinearGlobalAveragePool`. onnxruntime keeps
    the mean in float, so it turns the last feature map back to NCHW and to float first (a
    transpose and a dequantization of 16 x 2048 x 10 x 10 values a batch); its int8 pooling reads
    the NHWC map as it is."""
    from onnx import helper

    if mean.op_type != "ReduceMean" or not any(a.name == "keepdims" and a.i == 1 for a in mean.attribute):
        return None
    axes = next((list(a.ints) for a in mean.attribute if a.name == "axes"), None)  # before opset 18
    if axes is None and len(mean.input) > 1:
        axes = index.constant(mean.input[1])  # opset 18 on
    dequantize, reshape = index.before(mean, "DequantizeLinear"), index.after(mean, "Reshape")
    quantize = index.after(reshape or mean, "QuantizeLinear")
    rank = index.ranks.get(mean.input[0])
    if axes is None or rank != 4 or sorted(int(a) % 4 for a in axes) != [2, 3] or dequantize is None or quantize is None:
        return None
    if len(dequantize.input) < 3 or len(quantize.input) < 3:
        return None
    pooled = f"{mean.output[0]}_int8"
    nodes = [helper.make_node("QLinearGlobalAveragePool", [*dequantize.input[:3], *quantize.input[1:3]],
                              [pooled if reshape else quantize.output[0]], name=f"{mean.output[0]}_int8",
                              domain="com.microsoft", channels_last=0)]
    if reshape is not None:
        nodes.append(helper.make_node("Reshape", [pooled, reshape.input[1]], [quantize.output[0]],
                                      name=f"{reshape.output[0]}_int8"))
    gone = [quantize, *([reshape] if reshape else []), *([dequantize] if index.only_reader(dequantize, mean) else [])]
    return nodes, gone


@functools.cache
def int8_failure() -> str | None:
    """Why onnxruntime cannot run int8 models here, or None where it can: found by doing it, once
    per process, not from a version number. A small network of the layers Xception quantizes (a
    convolution, a depthwise and a pointwise one, ReLUs, residual additions, max and global average
    pooling) goes through `quantize_onnx` (with `int8_rewrites`), runs, and is compared with its
    fp32 self.

    (NNCF's int8 ONNX fails in onnxruntime 1.32's QLinearConv; onnxruntime's own quantizer does not.)
    """
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = {"stem": (8, 3, 3, 3), "depthwise": (8, 1, 3, 3), "pointwise": (8, 8, 1, 1), "next": (8, 8, 1, 1),
               "head": (4, 8, 1, 1)}
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
        helper.make_node("MaxPool", ["h"], ["p"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("ReduceMean", ["p"], ["m"], axes=[2, 3], keepdims=1),  # global average pooling
        helper.make_node("Conv", ["m", "head"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "probe", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 1, 1])],
                              initializers)
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
