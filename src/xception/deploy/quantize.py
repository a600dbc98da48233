"""int8 post-training quantization, three ways: NNCF for OpenVINO, PyTorch's PT2E flow, and
onnxruntime's own static quantizer.

- NNCF (`quantize_openvino`): the OpenVINO model read from the project's ONNX export, quantized
  with NNCF's defaults (the "performance" preset: symmetric int8 activations, per-channel int8
  weights, fast bias correction); OpenVINO then runs convolutions and matrix multiplies in int8
  with VNNI where the CPU has it.
- PT2E (`quantize_pt2e`): `torch.export`, torchao's `prepare_pt2e` / `convert_pt2e` with the
  `X86InductorQuantizer` defaults, then inductor with freezing lowers the quantize/dequantize
  pairs into oneDNN int8 convolutions (`pt2e_engine`). Max pooling runs in int8 too: the TF-"same"
  pools are rewritten as an explicit edge-replicating pad and a floor-mode pool (`Int8SamePadMaxPool2d`),
  because inductor's quantized max-pool lowering computes the wrong output size with `ceil_mode`
  (torch 2.14), which the built-in form of even sizes uses.
- onnxruntime (`quantize_onnxruntime`): the project's ONNX export through onnxruntime's
  `quantize_static` with its CPU guide's settings (`xception.deploy.onnxruntime_int8`): QDQ, int8
  weights per channel, uint8 activations; onnxruntime fuses the pairs into its int8 kernels.

All three calibrate on the same images (`xception.deploy.calibration`), one image per step.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from xception.cpu import cpu_features_text, cpu_has_vnni
from xception.deploy.engines import Engine, onnxruntime_engine, openvino_engine
from xception.deploy.runtimes import (
    openvino_core,
    require_runtime,
    threads_or_torch,
    threads_text,
    torch_threads,
)
from xception.errors import UserError
from xception.runtime import compile_model


class Int8RefusedError(UserError, ValueError):
    """An int8 model whose outputs are too far from fp32's (`xception.deploy.int8`), or one made for
    a CPU whose int8 arithmetic this one lacks: never returned, written, cached or chosen."""


def quantize_openvino(onnx_path: str | os.PathLike, calibration: torch.Tensor) -> Any:
    """The `openvino.Model` of `onnx_path` quantized to int8 by NNCF on `calibration` (N, C, H, W)."""
    require_runtime("openvino", "int8")
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    model = openvino_core().read_model(str(onnx_path))
    items = [image[None].numpy() for image in calibration.float()]
    # NNCF's own remedy for 16-bit saturation (its "overflow fix": 7-bit weights), by default on
    # the first layer only; without VNNI every layer needs it (tests/test_int8_isa.py).
    fix = OverflowFix.FIRST_LAYER if cpu_has_vnni() else OverflowFix.ENABLE
    return nncf.quantize(model, nncf.Dataset(items), subset_size=len(items),
                         advanced_parameters=AdvancedQuantizationParameters(overflow_fix=fix))


def quantize_onnxruntime(onnx_path: str | os.PathLike, calibration: torch.Tensor, target: str | os.PathLike) -> Path:
    """The path `target` of `onnx_path` quantized to int8 (QDQ) by onnxruntime on `calibration` (N, C, H, W)."""
    require_runtime("onnxruntime", "int8")
    from xception.deploy.onnxruntime_int8 import quantize_onnx

    return quantize_onnx(onnx_path, target, (image[None].numpy() for image in calibration.float()))


class Int8SamePadMaxPool2d(nn.Module):
    """`SamePadMaxPool2d` at stride 2 as a pad and a floor-mode pool, for the int8 graph.

    TF "same" pads (2 if the side is odd, else 1) in total, the smaller half first. Padding by
    replicating the edge instead of with -inf gives the same maxima (the pad repeats a value that
    is in the window already) and needs no value outside the int8 range, so the quantizer keeps
    the pool in int8; with the padding explicit the pool needs no `ceil_mode`.
    Input (N, C, H, W) -> (N, C, ceil(H / 2), ceil(W / 2)).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pad_h, pad_w = (2 if h % 2 else 1), (2 if w % 2 else 1)
        x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), mode="replicate")
        return F.max_pool2d(x, 3, 2)


def with_int8_pools(model: nn.Module) -> nn.Module:
    """`model` (changed in place) with every stride-2 `SamePadMaxPool2d` an `Int8SamePadMaxPool2d`."""
    from xception.models.layers import SamePadMaxPool2d

    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, SamePadMaxPool2d) and child.stride == 2:
                setattr(module, child_name, Int8SamePadMaxPool2d())
    return model


def _pad_propagating_quantizer_class() -> type:
    """torchao's `X86InductorQuantizer` that also keeps a pad between quantized ops in int8.

    The quantizer propagates int8 through max pooling only when the pool's input is quantized; a
    pad in between (`Int8SamePadMaxPool2d`) is not among the ops it propagates through, which left
    both the pad and the pool in floating point. A pad moves values without changing them, so its
    output shares its input's quantization, as the quantizer does for flatten.
    """
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as x86

    pad = torch.ops.aten.pad.default

    class PadPropagatingQuantizer(x86.X86InductorQuantizer):
        def _annotate_propagation_quantizable_pattern(self, node, quantization_config, filter_fn) -> None:
            if node.target is pad and node.op == "call_function" and quantization_config is not None:
                source = node.all_input_nodes[0]
                if not x86._is_any_annotated([node]) and x86._is_quantized_op_pt2e(source):
                    node.meta[x86.QUANT_ANNOTATION_KEY] = x86._X86InductorQuantizationAnnotation(
                        input_qspec_map={source: x86.get_input_act_qspec(quantization_config)},
                        _annotated=True, _is_output_of_quantized_pattern=True)
                return
            super()._annotate_propagation_quantizable_pattern(node, quantization_config, filter_fn)

        def _annotate_output_for_int8_in_int8_out_pattern(self, node) -> None:
            if node.target is pad and x86._is_any_annotated([node]):
                self._annotate_output_share_observer_as_input(node.all_input_nodes[0], node)
                return
            super()._annotate_output_for_int8_in_int8_out_pattern(node)

    return PadPropagatingQuantizer


def quantize_pt2e(model: nn.Module, calibration: torch.Tensor) -> nn.Module:
    """`model` (BatchNorm folded on the way) as a PT2E int8 graph module calibrated on `calibration`.

    Run eagerly it only simulates int8 (quantize/dequantize in fp32); `pt2e_engine` compiles it.
    """
    require_runtime("torch", "int8")
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as x86
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from xception.models.fuse import fuse_for_inference

    fused = with_int8_pools(fuse_for_inference(model)).to(memory_format=torch.channels_last)
    example = calibration[:2].contiguous(memory_format=torch.channels_last)
    batch = torch.export.Dim("batch", min=1)
    graph = torch.export.export(fused, (example,), dynamic_shapes=({0: batch},)).module()
    # Without VNNI, 7-bit activations (the X86 quantizer's `reduce_range`), so that oneDNN's 16-bit
    # pair sums cannot saturate; with VNNI the full 8 bits, which lose less.
    config = x86.get_default_x86_inductor_quantization_config(reduce_range=not cpu_has_vnni())
    quantizer = _pad_propagating_quantizer_class()().set_global(config)
    prepared = prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for image in calibration:
            prepared(image[None].contiguous(memory_format=torch.channels_last))
    return convert_pt2e(prepared)


def pt2e_engine(quantized: nn.Module, *, threads: int | None = None) -> Engine:
    """A `quantize_pt2e` module compiled by inductor with freezing, on the CPU, each call with
    `threads` intra-op threads (default: PyTorch's); the process's own count stays as it is."""
    count = threads_or_torch(threads)
    # Static shapes: inductor's dynamic-batch recompilation of the int8 convolutions expects the
    # wrong strides for 1-channel inputs (torch 2.14); a new batch size compiles anew instead.
    quantized = compile_model(quantized, training=False, dynamic=False)

    @torch.no_grad()
    def run(images: torch.Tensor) -> torch.Tensor:
        with torch_threads(count):
            return quantized(images.float().contiguous(memory_format=torch.channels_last)).float()

    return Engine("torch", "int8", f"PyTorch {torch.__version__} (PT2E int8, X86InductorQuantizer, inductor with "
                  f"freezing, {threads_text(count)})", run)


def save_quantized(quantized: Any, path: str | os.PathLike, *, example: torch.Tensor) -> None:
    """Write a quantized model: an `openvino.Model` as OpenVINO IR (.xml and .bin), a PT2E module
    as a torch.export program (.pt2, loadable with `torch.export.load` once torchao is imported),
    onnxruntime's (an `onnx.ModelProto`) as an .onnx file."""
    path = str(path)
    if type(quantized).__name__ == "ModelProto":
        if not path.endswith(".onnx"):
            raise ValueError(f"an onnxruntime int8 model is saved as an .onnx file; got {path!r}")
        import onnx

        onnx.save(quantized, path)
        return
    if isinstance(quantized, nn.Module):
        if not path.endswith(".pt2"):
            raise ValueError(f"a PT2E int8 model is saved as a .pt2 file; got {path!r}")
        batch = torch.export.Dim("batch", min=1)
        example = example.contiguous(memory_format=torch.channels_last)
        torch.export.save(torch.export.export(quantized, (example,), dynamic_shapes=({0: batch},)), path)
        return
    import openvino

    if not path.endswith(".xml"):
        raise ValueError(f"an OpenVINO int8 model is saved as an .xml file (and a .bin beside it); got {path!r}")
    openvino.save_model(quantized, path, compress_to_fp16=False)


def load_quantized(path: str | os.PathLike, *, threads: int | None = None) -> Engine:
    """The int8 `Engine` of a file `save_quantized` wrote: a .pt2 PT2E program (compiled by
    inductor again, as `pt2e_engine` does), an OpenVINO IR .xml (with its .bin) or an onnxruntime
    QDQ .onnx."""
    path = str(path)
    _refuse_if_made_for_vnni(path)
    if path.endswith(".pt2"):
        require_runtime("torch", "int8")
        import torchao.quantization.pt2e.quantize_pt2e  # noqa: F401  (registers the quantized ops the program uses)

        return pt2e_engine(torch.export.load(path).module(), threads=threads)
    if path.endswith(".xml"):
        return openvino_engine(path, precision="int8", threads=threads)
    if path.endswith(".onnx"):
        require_runtime("onnxruntime", "int8")
        engine = onnxruntime_engine(path, threads=threads)
        if engine.precision != "int8":
            raise ValueError(f"{path} is not an int8 model (it has no QuantizeLinear nodes); run it with xception "
                             "predict/eval --runtime onnxruntime, or quantize it with xception quantize")
        return engine
    raise ValueError(f"an int8 model is a .pt2 (PT2E), .xml (OpenVINO IR) or .onnx (onnxruntime QDQ) file; "
                     f"got {path!r}")


def _refuse_if_made_for_vnni(path: str) -> None:
    """Refuse an int8 file that `xception quantize` made with 8-bit weights and activations on a CPU
    with VNNI (its int8.json says so) where this CPU has none: its 16-bit sums would saturate here."""
    import json

    report = Path(path).with_name("int8.json")
    try:
        made_with_vnni = json.loads(report.read_text())["cpu"]["vnni"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # no record (written before the record existed, or moved without it): nothing to go by
    if made_with_vnni and not cpu_has_vnni():
        raise Int8RefusedError(f"{path} was quantized on a CPU with VNNI ({report} says so), with 8 bits on both "
                               f"sides; this CPU ({cpu_features_text()}) would saturate its 16-bit sums and give "
                               f"wrong answers. Quantize again here: xception quantize --weights WEIGHTS --out DIR")
