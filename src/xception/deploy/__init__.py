"""Inference the way a model is deployed: eager or compiled PyTorch, onnxruntime and OpenVINO.

In layers, each importing only the ones below it (tests/test_package_layers.py checks it):

0. `export_formats`, `quantize_methods`: the formats and int8 methods by name (and the int8 defaults),
   importing nothing, for the command line's parser;
1. `runtimes`: what each runtime needs and computes, the one availability check
   (`require_runtime`), the process's one OpenVINO Core, the thread count;
   `engines`: a model ready for inference in one runtime and precision (`Engine`): PyTorch,
   onnxruntime and OpenVINO;
2. `export`: ONNX, OpenVINO IR, TorchScript and torch.export files, checked by running them;
   `quantize`: int8 post-training quantization through NNCF (OpenVINO) or PyTorch's PT2E flow;
3. `build`: a model as an engine of any runtime and precision; `cost`: what a path costs in top-1;
   `calibration`: images for quantization, from the data the weights were trained on;
4. `choice`: which runtime and precision `xception predict` / `eval` use by default, and why;
5. `trained`: a trained weight file as an engine, or quantized with its cost measured.

onnxruntime, OpenVINO and NNCF are optional (`pip install 'xception[deploy]'`); each is imported
only when a runtime that needs it is asked for.
"""
