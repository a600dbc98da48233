"""What the model looks at: class activation maps (CAM, Grad-CAM, Grad-CAM++, Score-CAM) of a batch,
at a layer named as in the model's `feature_info`, and their overlays on the images (docs/explain.md)."""

from xception.explain.layers import default_layer, feature_layers
from xception.explain.methods import METHODS, Explanation, Method, explain

__all__ = ["METHODS", "Explanation", "Method", "default_layer", "explain", "feature_layers"]
