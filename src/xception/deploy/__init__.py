"""Inference the way a model is deployed: eager or compiled PyTorch, onnxruntime and OpenVINO.

- `engines`: a model ready for inference in one runtime and precision (`Engine`), built from the
  project's own ONNX export for onnxruntime and OpenVINO;
- `choice`: which runtime and precision `xception predict` / `eval` use by default, and why;
- `calibration`: images for post-training quantization, from the data the weights were trained on;
- `quantize`: int8 post-training quantization through NNCF (OpenVINO) or PyTorch's PT2E flow.

onnxruntime, OpenVINO and NNCF are optional (`pip install 'xception[deploy]'`); each is imported
only when a runtime that needs it is asked for.
"""
