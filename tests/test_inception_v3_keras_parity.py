"""Inception V3 against Keras Applications' `InceptionV3` (TensorFlow's numerics), on Keras' torch backend.

Keras builds BatchNorm without a scale (gamma) and averages "same"-padded pools over real pixels
only; with every gamma at 1 and `pool_counts_padding=False` our network must be Keras' exactly.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch import nn

from xception.models import create_model
from xception.models.complexity import count_parameters

os.environ.setdefault("KERAS_BACKEND", "torch")  # must precede the first import of keras
keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":
    pytest.skip("these tests run Keras on its torch backend (KERAS_BACKEND=torch)", allow_module_level=True)
# Keras' torch backend converts tensors with np.array(x), which NumPy 2 warns about; not ours.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _creation_order(layer) -> int:
    # Keras numbers unnamed layers conv2d, conv2d_1, ... as they are created: the order of
    # `inception_v3.py` (and of torchvision) branch by branch, unlike the graph's topological order.
    suffix = layer.name.rsplit("_", 1)[-1]
    return int(suffix) if suffix.isdigit() else 0


@pytest.fixture(scope="module")
def keras_inception_v3():
    """Keras' InceptionV3 (50 classes, logits) with random kernels and BatchNorm tensors."""
    keras.utils.set_random_seed(0)
    model = keras.applications.InceptionV3(
        weights=None, include_top=True, classes=50, input_shape=(91, 91, 3), classifier_activation=None
    )
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            (channels,) = layer.weights[0].shape
            layer.set_weights([  # beta, moving mean, moving variance (no gamma: scale=False)
                rng.normal(0.0, 0.1, channels).astype("float32"),
                rng.normal(0.0, 0.1, channels).astype("float32"),
                rng.uniform(0.5, 2.0, channels).astype("float32"),
            ])
    return model


def _ours_from_keras(model, **overrides) -> nn.Module:
    ours = create_model("inception_v3", num_classes=50, **overrides).eval()
    layers = sorted(model.layers, key=_creation_order)
    k_convs = [layer for layer in layers if isinstance(layer, keras.layers.Conv2D)]
    k_bns = [layer for layer in layers if isinstance(layer, keras.layers.BatchNormalization)]
    (k_dense,) = [layer for layer in layers if isinstance(layer, keras.layers.Dense)]
    convs = [m for m in ours.modules() if isinstance(m, nn.Conv2d)]
    bns = [m for m in ours.modules() if isinstance(m, nn.BatchNorm2d)]
    numpy = keras.ops.convert_to_numpy
    with torch.no_grad():
        for k_conv, conv in zip(k_convs, convs, strict=True):  # (kh, kw, in, out) -> (out, in, kh, kw)
            conv.weight.copy_(torch.from_numpy(numpy(k_conv.kernel)).permute(3, 2, 0, 1))
        for k_bn, bn in zip(k_bns, bns, strict=True):
            beta, mean, var = (torch.from_numpy(numpy(w)) for w in k_bn.weights)
            bn.weight.fill_(1.0)
            bn.bias.copy_(beta)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
        ours.classifier.weight.copy_(torch.from_numpy(numpy(k_dense.kernel)).T)
        ours.classifier.bias.copy_(torch.from_numpy(numpy(k_dense.bias)))
    return ours


def test_inception_v3_equals_keras_with_tensorflow_pooling(keras_inception_v3):
    x = np.random.default_rng(1).uniform(-1.0, 1.0, size=(2, 91, 91, 3)).astype("float32")
    expected = torch.from_numpy(keras.ops.convert_to_numpy(keras_inception_v3(x, training=False)))
    images = torch.from_numpy(x).permute(0, 3, 1, 2)
    with torch.no_grad():
        tensorflow_pooling = _ours_from_keras(keras_inception_v3, pool_counts_padding=False)(images)
        torchvision_pooling = _ours_from_keras(keras_inception_v3)(images)
    assert expected.std() > 0.05
    torch.testing.assert_close(tensorflow_pooling, expected, rtol=1e-4, atol=1e-5)
    # torchvision's pooling is another network: the same weights give other logits.
    assert (torchvision_pooling - expected).abs().max() > 100 * (tensorflow_pooling - expected).abs().max()


def test_inception_v3_parameter_count_is_keras_plus_batchnorm_gammas(keras_inception_v3):
    keras_count = sum(int(np.prod(w.shape)) for w in keras_inception_v3.trainable_weights)
    ours = create_model("inception_v3", num_classes=50)
    gammas = sum(m.weight.numel() for m in ours.modules() if isinstance(m, nn.BatchNorm2d))
    assert keras_count == count_parameters(ours) - gammas == 21_870_802
