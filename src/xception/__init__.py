"""xception: Chollet's Xception in PyTorch, exact to the paper and the Keras weights."""

from xception.models import create_model, list_models, list_weights

__version__ = "0.1.0"
__all__ = ["__version__", "create_model", "list_models", "list_weights"]
