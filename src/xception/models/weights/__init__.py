"""Weights in and out: the official Keras files, Keras 3, timm/Cadene, torchvision, and our own format.

- `load_weights(model, path)`: load any supported file into a model (what `create_model(weights=)`
  calls); fails naming the first tensor that does not fit.
- `save_weights(model, path, *, metadata=None)`: this project's format (safetensors + JSON identity).
- `read_metadata(path)`: that identity.
See docs/weights.md for the formats and what differs between Keras, timm and this project.
"""

from xception.models.weights.load import load_weights
from xception.models.weights.native import read_metadata, save_weights

__all__ = ["load_weights", "read_metadata", "save_weights"]
