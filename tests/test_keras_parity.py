"""Parity with the author's Keras Applications Xception, through every Keras weight layout we read.

One Keras model per module (module-scoped fixture): random kernels, random BatchNorm scale and
shift, and BatchNorm moving statistics set from a calibration batch, so that every layer sees
normalised inputs and an error in an early layer still shows at the logits (with arbitrary
random statistics the deep layers drown it out, and a wrong padding passes). Keras runs on its
torch backend, in float32 like ours.
"""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from keras_layout_files import write_keras2_h5
from xception import create_model
from xception.models.layers import SamePadMaxPool2d

os.environ.setdefault("KERAS_BACKEND", "torch")  # must precede the first import of keras
keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":
    pytest.skip("these tests run Keras on its torch backend (KERAS_BACKEND=torch)", allow_module_level=True)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Keras' numpy 2 notices

TOLERANCE = 1e-5  # ||ours - keras|| / ||keras||
NUM_CLASSES = 1000  # Keras' Xception with include_top fixes 1000 classes unless told otherwise


def relative_error(ours: torch.Tensor, reference: np.ndarray) -> float:
    reference = torch.as_tensor(np.asarray(reference), dtype=torch.float64)
    return float((ours.double() - reference).norm() / reference.norm())


def images(height: int, width: int, *, seed: int, batch: int = 1) -> np.ndarray:
    """Channels-last images in [-1, 1], the range of Keras' preprocess_input for Xception."""
    return np.random.default_rng(seed).uniform(-1, 1, (batch, height, width, 3)).astype(np.float32)


def run_ours(model: nn.Module, batch: np.ndarray) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous())


def run_keras(model, batch: np.ndarray) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(batch, training=False))


@pytest.fixture(scope="module")
def keras_xception():
    """(Keras Xception with its top at 299 px, the same weights without the top at any size)."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    top = keras.applications.Xception(weights=None, input_shape=(299, 299, 3), classifier_activation=None)
    batch_norms = [layer for layer in top.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in batch_norms:
        channels = layer.gamma.shape[0]
        layer.gamma.assign(rng.uniform(0.5, 1.5, channels).astype(np.float32))
        layer.beta.assign(rng.uniform(-0.5, 0.5, channels).astype(np.float32))
        layer.momentum = 0.0  # one training-mode pass sets the moving statistics to the batch's
    dense = top.get_layer("predictions")
    dense.bias.assign(rng.normal(0, 0.1, NUM_CLASSES).astype(np.float32))
    top(images(299, 299, seed=100, batch=2), training=True)
    for layer in batch_norms:
        layer.momentum = 0.99
    body = keras.applications.Xception(weights=None, include_top=False, pooling="avg", input_shape=(None, None, 3))
    body_weights = top.get_weights()[:-2]  # all but predictions' kernel and bias
    assert [w.shape for w in body.get_weights()] == [w.shape for w in body_weights]
    body.set_weights(body_weights)
    return top, body


@pytest.fixture(scope="module")
def keras_files(keras_xception, tmp_path_factory):
    """Every layout of the same weights: Keras 2 legacy with and without ':0', Keras 3, with and without top."""
    from keras.src.legacy.saving import legacy_h5_format

    top, body = keras_xception
    folder = tmp_path_factory.mktemp("keras")
    files = {
        "keras2_top": folder / "xception_weights_tf_dim_ordering_tf_kernels.h5",
        "keras2_notop": folder / "xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "keras3_legacy_top": folder / "keras3_legacy.h5",
        "keras3_top": folder / "top.weights.h5",
        "keras3_notop": folder / "notop.weights.h5",
    }
    write_keras2_h5(top, files["keras2_top"], suffix=":0")
    write_keras2_h5(body, files["keras2_notop"], suffix=":0", chunked=True)
    with h5py.File(files["keras3_legacy_top"], "w") as f:  # Keras' own legacy writer: names without ":0"
        legacy_h5_format.save_weights_to_hdf5_group(f, top)
    top.save_weights(files["keras3_top"])
    body.save_weights(files["keras3_notop"])
    return files


@pytest.fixture(scope="module")
def keras_logits_299(keras_xception):
    batch = images(299, 299, seed=1)
    return batch, run_keras(keras_xception[0], batch)


@pytest.fixture(scope="module")
def keras_features(keras_xception):
    """size -> (images, Keras' pooled features), computed once per size."""
    cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def features(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        if size not in cache:
            batch = images(*size, seed=size[0] * 1000 + size[1])
            cache[size] = batch, run_keras(keras_xception[1], batch)
        return cache[size]

    return features


@pytest.mark.parametrize("layout", ["keras2_top", "keras3_legacy_top", "keras3_top"])
def test_keras_weights_logits_match_keras_at_299(layout, keras_files, keras_logits_299):
    batch, expected = keras_logits_299
    model = create_model("xception", num_classes=NUM_CLASSES, weights=keras_files[layout])
    error = relative_error(run_ours(model, batch), expected)
    print(f"Keras {layout}, logits at 299 px: relative error {error:.2e}")
    assert error < TOLERANCE


@pytest.mark.parametrize("layout", ["keras2_notop", "keras3_notop"])
def test_keras_notop_weights_features_match_keras(layout, keras_files, keras_features):
    # 131x96 px: the pools see 63x45, 32x23, 16x12, 8x6: odd, mixed and even sizes.
    batch, expected = keras_features((131, 96))
    model = create_model("xception", num_classes=0, weights=keras_files[layout])
    error = relative_error(run_ours(model, batch), expected)
    print(f"Keras {layout}, features at 131x96 px: relative error {error:.2e}")
    assert error < TOLERANCE


@pytest.mark.parametrize("size", [(224, 224), (131, 96)])
def test_keras_top_weights_logits_match_keras_at_other_sizes(size, keras_xception, keras_files, keras_features):
    # 224 px: the pools see 109, 55, 28, 14 (odd, then even, where 299 px is odd, even, odd, odd).
    # Keras' include_top model fixes 299 px; its logits elsewhere are its body's pooled features
    # times the predictions layer, computed here by hand.
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in keras_xception[0].get_layer("predictions").weights)
    batch, features = keras_features(size)
    expected = features.astype(np.float64) @ kernel + bias
    model = create_model("xception", num_classes=NUM_CLASSES, weights=keras_files["keras2_top"])
    error = relative_error(run_ours(model, batch), expected)
    print(f"Keras keras2_top, logits at {size[0]}x{size[1]} px: relative error {error:.2e}")
    assert error < TOLERANCE


def test_keras_top_weights_into_model_without_head_give_features(keras_files, keras_features):
    batch, expected = keras_features((131, 96))
    model = create_model("xception", num_classes=0, weights=keras_files["keras2_top"])
    assert relative_error(run_ours(model, batch), expected) < TOLERANCE


def test_keras_notop_weights_into_model_with_head_keep_fresh_head(keras_files, keras_features):
    batch, expected = keras_features((131, 96))
    torch.manual_seed(0)
    model = create_model("xception", num_classes=7, weights=keras_files["keras2_notop"]).eval()
    torch.manual_seed(0)
    fresh = create_model("xception", num_classes=7)  # the same seed: the same fresh head
    assert torch.equal(model.classifier.weight, fresh.classifier.weight)
    with torch.no_grad():
        features = model.forward_head(model.forward_features(torch.from_numpy(batch).permute(0, 3, 1, 2)), pre_logits=True)
    assert relative_error(features, expected) < TOLERANCE


def test_keras_whole_model_h5_loads_from_its_model_weights_group(keras_files, tmp_path):
    whole = tmp_path / "whole_model.h5"  # model.save(...) in Keras 2 puts the weights under model_weights
    with h5py.File(keras_files["keras2_top"], "r") as source, h5py.File(whole, "w") as target:
        group = target.create_group("model_weights")
        for key, value in source.attrs.items():
            group.attrs[key] = value
        for name in source:
            source.copy(source[name], group)
    expected = create_model("xception", weights=keras_files["keras2_top"]).state_dict()
    loaded = create_model("xception", weights=whole).state_dict()
    assert all(torch.equal(expected[key], loaded[key]) for key in expected)


def test_keras_parity_fails_with_pytorch_default_bn_eps(keras_files, keras_logits_299):
    batch, expected = keras_logits_299
    model = create_model("xception", num_classes=NUM_CLASSES, bn_eps=1e-5, weights=keras_files["keras2_top"])
    error = relative_error(run_ours(model, batch), expected)
    print(f"Keras keras2_top into a model with BN eps 1e-5, logits at 299 px: relative error {error:.2e}")
    assert error > 100 * TOLERANCE


def test_keras_parity_fails_with_symmetric_pooling(keras_files, keras_logits_299):
    batch, expected = keras_logits_299
    model = create_model("xception", num_classes=NUM_CLASSES, weights=keras_files["keras2_top"])
    pools = [name for name, module in model.named_modules() if isinstance(module, SamePadMaxPool2d)]
    assert len(pools) == 4
    for name in pools:
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, nn.MaxPool2d(3, 2, padding=1))
    error = relative_error(run_ours(model, batch), expected)
    print(f"Keras keras2_top into a model with symmetric pools, logits at 299 px: relative error {error:.2e}")
    assert error > 100 * TOLERANCE


def test_keras_weights_into_other_variant_fail_naming_the_tensor(keras_files):
    with pytest.raises(ValueError, match=r"conv2d_1/kernel:0.*no counterpart in model 'xception_no_residual'"):
        create_model("xception_no_residual", weights=keras_files["keras2_top"])
    with pytest.raises(ValueError, match=r"block1_conv1/kernel:0' has shape \(3, 3, 3, 32\)"):
        create_model("xception", width=0.5, weights=keras_files["keras2_top"])
    with pytest.raises(ValueError, match=r"layer 'block8_sepconv3' .*no counterpart in model 'xception_small'"):
        create_model("xception_small", weights=keras_files["keras2_top"])
    with pytest.raises(ValueError, match=r"predictions/kernel:0' has shape \(2048, 1000\).*num_classes=1000"):
        create_model("xception", num_classes=10, weights=keras_files["keras2_top"])
    with pytest.raises(ValueError, match=r"layers/dense/vars/0' has shape"):
        create_model("xception", num_classes=10, weights=keras_files["keras3_top"])
