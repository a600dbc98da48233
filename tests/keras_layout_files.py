"""Files in the layout of the official Keras 2 Xception weights, written from a Keras model by a writer
independent of this project's reader (shared by the parity and the download tests)."""

from __future__ import annotations

import h5py


def write_keras2_h5(model, path, *, suffix: str = ":0", chunked: bool = False) -> None:
    """The layout of the official Keras 2 files, written independently of our reader.

    Root attributes `layer_names` (every layer, in model order), `backend`, `keras_version`; one
    group per layer with attribute `weight_names` (`<layer>/<weight><suffix>`), the datasets under
    those names. Unnamed layers get Keras 2's 1-based names (`conv2d_1`, `batch_normalization_1`).
    `chunked` splits `layer_names` into `layer_names0`, `layer_names1`, as Keras does past 64 KB.
    """
    counters: dict[str, int] = {}
    names = []
    for layer in model.layers:
        if layer.name.startswith(("block", "predictions", "input")):
            names.append(layer.name)
        else:
            prefix = layer.name.rstrip("0123456789").rstrip("_")
            counters[prefix] = counters.get(prefix, 0) + 1
            names.append(f"{prefix}_{counters[prefix]}")
    with h5py.File(path, "w") as f:
        if chunked:
            half = len(names) // 2
            f.attrs["layer_names0"] = [n.encode() for n in names[:half]]
            f.attrs["layer_names1"] = [n.encode() for n in names[half:]]
        else:
            f.attrs["layer_names"] = [n.encode() for n in names]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.0.8"
        for name, layer in zip(names, model.layers, strict=True):
            group = f.create_group(name)
            weight_names = [f"{name}/{w.path.rsplit('/', 1)[-1]}{suffix}" for w in layer.weights]
            group.attrs["weight_names"] = [n.encode() for n in weight_names]
            for weight_name, weight in zip(weight_names, layer.weights, strict=True):
                group.create_dataset(weight_name, data=weight.numpy())
