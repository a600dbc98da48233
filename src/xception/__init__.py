"""xception: Chollet's Xception in PyTorch, exact to the paper and the Keras weights."""

from xception.lazy_exports import lazy_exports

__version__ = "0.1.0"
__all__ = ["__version__", "create_model", "list_models", "list_weights"]
# The models import torch; `import xception.cli` (the parser of `xception --help`) must not.
__getattr__ = lazy_exports(__name__, {
    "create_model": "xception.models", "list_models": "xception.models", "list_weights": "xception.models"})
