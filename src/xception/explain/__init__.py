"""What the model looks at: class activation maps (CAM, Grad-CAM, Grad-CAM++, Score-CAM) of a batch,
at a layer named as in the model's `feature_info`, and their overlays on the images (docs/explain.md)."""

from xception.lazy_exports import lazy_exports

__all__ = ["METHODS", "Explanation", "Method", "default_layer", "explain", "feature_layers"]
# Imported on first use: the command line reads `method_names` (torch-free) for its choices.
__getattr__ = lazy_exports(__name__, {
    "METHODS": "xception.explain.method_names", "Method": "xception.explain.method_names",
    "Explanation": "xception.explain.methods", "explain": "xception.explain.methods",
    "default_layer": "xception.explain.layers", "feature_layers": "xception.explain.layers"})
