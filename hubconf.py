"""torch.hub entry points: `torch.hub.load("<owner>/xception", "xception", weights="imagenet")`, or from a
clone, `torch.hub.load("path/to/clone", "xception", source="local", weights=None)`.

Each entry is `create_model` of the registered model of that name; `weights` takes what
`create_model` takes (None, a weight file, or published weights by name such as "imagenet", fetched
into `$XCEPTION_HOME` and checked), and the keyword arguments (num_classes, drop_rate, overrides) too.
"""

import sys
from pathlib import Path

dependencies = ["torch", "torchvision", "safetensors", "h5py", "tqdm"]

# torch.hub imports this file from the repository root; the package lives in src/.
sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from xception.models import create_model as _create_model  # noqa: E402


def xception(weights=None, **kwargs):
    """Xception (Figure 5, Keras Applications). weights="imagenet": the paper's ImageNet weights, as
    Keras publishes them (1000 classes, RGB 299 px in [-1, 1])."""
    return _create_model("xception", weights=weights, **kwargs)


def inception_v3(weights=None, **kwargs):
    """The paper's baseline Inception V3 without its auxiliary tower. weights="imagenet": Google's
    ImageNet weights as torchvision ships them."""
    return _create_model("inception_v3", weights=weights, **kwargs)
