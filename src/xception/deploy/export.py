"""Export a model to ONNX, OpenVINO IR, TorchScript or a torch.export program, checked against PyTorch.

The exported file is always verified by running it: ONNX in onnxruntime, OpenVINO IR in OpenVINO
(fp32, which must be asked for on a CPU with native bf16), TorchScript through `torch.jit.load`,
a torch.export program through `torch.export.load`, on a fresh random batch, and the largest
absolute difference from the PyTorch model's output is returned. The OpenVINO IR (an .xml file
and its .bin weights) is converted from the ONNX export, in fp32. ONNX and OpenVINO IR are run
through the same engines (`xception.deploy.engines`) that `predict` and `eval` use.

`export_for_runtimes` is the export onnxruntime and OpenVINO engines are built from.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from xception.deploy.digest import weights_digest
from xception.deploy.engines import onnxruntime_engine, openvino_engine
from xception.deploy.export_formats import EXPORT_FORMATS, ExportFormat
from xception.deploy.runtimes import require_runtime

log = logging.getLogger(__name__)
_SUFFIXES = {"torch_export": (".pt2", "torch.export programs are saved as .pt2 files"),
             "openvino": (".xml", "OpenVINO IR is saved as an .xml file (and a .bin beside it)")}


def example_input(model: nn.Module, *, image_size: int, batch_size: int, seed: int = 0) -> torch.Tensor:
    """A random batch (batch_size, in_channels, image_size, image_size) in [-1, 1]."""
    generator = torch.Generator().manual_seed(seed)
    shape = (batch_size, getattr(model, "in_channels", 3), image_size, image_size)
    return torch.rand(shape, generator=generator) * 2 - 1


def export_model(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    format: ExportFormat,
    image_size: int,
    batch_size: int,
    dynamic_batch: bool = True,
    optimize_onnx: bool = True,
) -> Path:
    """Write `model` (put in eval mode) to `path` in `format`, traced at the given input size.

    The spatial size is fixed (the TF-same pools pick their padding from it); the batch size is
    dynamic for "onnx" and "torch_export" when `batch_size` > 1 and `dynamic_batch` (TorchScript
    traces fix it). `optimize_onnx` runs onnxscript's graph optimizer (constant folding, fusions);
    off, the export takes about a third less time and computes the same function.
    """
    if format not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {format!r}; valid: {', '.join(EXPORT_FORMATS)}")
    path = Path(path)
    if format in _SUFFIXES and path.suffix != _SUFFIXES[format][0]:
        suffix, what = _SUFFIXES[format]
        raise ValueError(f"{what}; got {str(path)!r}, use a {suffix} name")
    model = model.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    x = example_input(model, image_size=image_size, batch_size=batch_size)
    batch = torch.export.Dim("batch", min=1) if dynamic_batch and batch_size > 1 else None
    if format == "onnx":
        require_runtime("onnxruntime")  # the exporter, and the runtime that checks its file
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notices about opset conversions
            torch.onnx.export(
                model,
                (x,),
                str(path),
                input_names=["images"],
                output_names=["output"],
                dynamic_shapes=({0: batch},) if batch is not None else None,
                dynamo=True,
                # One self-contained file (the largest model here, DeepLabV3+ on xception65, is far under
                # protobuf's 2 GB), which can be moved into place whole: the cache renames it.
                external_data=False,
                optimize=optimize_onnx,
                verbose=False,
            )
    elif format == "openvino":
        require_runtime("openvino")
        import openvino

        with tempfile.TemporaryDirectory(prefix="xception-export-") as directory:
            onnx_path = export_model(model, Path(directory) / "model.onnx", format="onnx", image_size=image_size,
                                     batch_size=batch_size, dynamic_batch=dynamic_batch, optimize_onnx=optimize_onnx)
            openvino.save_model(openvino.convert_model(str(onnx_path)), str(path), compress_to_fp16=False)
    elif format == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings (shape checks become constants, as intended)
            traced = torch.jit.trace(model, x)
        traced.save(str(path))
    else:
        program = torch.export.export(model, (x,), dynamic_shapes=({0: batch},) if batch is not None else None)
        torch.export.save(program, str(path))
    return path


def verify_export(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    format: ExportFormat,
    image_size: int,
    batch_size: int,
    seed: int = 1,
) -> float:
    """Run the exported file and `model` on the same new random batch; the max absolute difference."""
    model = model.eval()
    x = example_input(model, image_size=image_size, batch_size=batch_size, seed=seed)
    with torch.no_grad():
        expected = model(x)
        if format == "onnx":
            actual = onnxruntime_engine(path)(x)
        elif format == "openvino":
            actual = openvino_engine(path, precision="fp32")(x)
        elif format == "torchscript":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated; still supported
                actual = torch.jit.load(str(path))(x)
        elif format == "torch_export":
            actual = torch.export.load(str(path)).module()(x)
        else:
            raise ValueError(f"unknown export format {format!r}; valid: {', '.join(EXPORT_FORMATS)}")
    if actual.shape != expected.shape:
        raise ValueError(f"exported {format} output has shape {tuple(actual.shape)}, PyTorch {tuple(expected.shape)}")
    return float((actual.double() - expected.double()).abs().max())


def export_for_runtimes(model: nn.Module, directory: str | os.PathLike, *, image_size: int) -> Path:
    """The project's ONNX export of `model` (BatchNorm folded, dynamic batch) in `directory`.

    Named by a digest of the folded weights, the input size and the exporter's versions, so that a
    directory can serve as a cache across processes (`InferenceSession` keeps one in
    `$XCEPTION_HOME/exports/`: a second `predict` never exports again) and nothing stale matches. The
    file is written under a temporary name and moved into place with its sha256 beside it; an entry
    whose checksum is missing or wrong (a killed writer, a damaged disk) is exported again with a
    warning, never used."""
    from xception.atomic_write import temporary_path, write_text_atomic
    from xception.deploy.runtimes import software_versions
    from xception.file_digest import file_sha256
    from xception.models.fuse import fuse_for_inference

    fused = fuse_for_inference(model)
    versions = {k: v for k, v in software_versions().items() if k in ("torch", "onnx", "onnxscript", "xception")}
    digest = weights_digest(fused, image_size, sorted(versions.items()))
    path = Path(directory) / f"{getattr(model, 'model_name', type(model).__name__)}-{digest[:16]}.onnx"
    checksum = path.with_name(path.name + ".sha256")
    if path.exists():
        if checksum.exists() and checksum.read_text().strip() == file_sha256(path):
            return path
        log.warning("the cached ONNX export %s is incomplete or corrupt (its checksum does not match); exporting "
                    "again", path)
    temporary = temporary_path(path)
    try:
        export_model(fused, temporary, format="onnx", image_size=image_size, batch_size=2)
        write_text_atomic(checksum, file_sha256(temporary) + "\n")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path

