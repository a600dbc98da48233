"""`WeightsDescription`: one reader and one writer of what a weight file is, old files included."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import xception
from xception import create_model
from xception.cli import main as cli_main
from xception.data.prediction import prediction_transform
from xception.description import Preprocessing, WeightsDescription
from xception.models.trained import open_weights
from xception.models.weights import save_weights
from xception.models.weights.registry import XCEPTION_IMAGENET
from xception.models.xception import BlockSpec

# What `fit` wrote into weights.safetensors before WeightsDescription (commit 8feb92b): the whole
# training DataConfig under "data", no "task" and no "preprocessing".
OLD_PHOTO_METADATA = {
    "class_names": ["cat", "dog", "owl"], "multilabel": False, "recipe": "fashion_mnist_demo", "step": 12,
    "metrics": {"top1": 0.5}, "git_commit": "8feb92b",
    "data": {"source": "imagefolder", "path": "/data/pets", "image_size": 36, "in_channels": 3,
             "crop_fraction": 0.8, "interpolation": "bicubic", "augment": True, "download": False, "seed": 0,
             "crop_padding": 2, "erase_probability": 0.0, "mosaic_grid": 2, "mosaic_train_size": 60000,
             "mosaic_val_size": 10000, "mosaic_class_skew": 1.0, "class_weights_path": None,
             "train_examples": None, "val_examples": None, "ground_truth": None},
}


@pytest.fixture(scope="module")
def old_file(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = create_model("xception_small", num_classes=3)
    path = tmp_path_factory.mktemp("old") / "weights.safetensors"
    save_weights(model, path, metadata=OLD_PHOTO_METADATA)
    return path


def test_description_reads_a_file_written_before_the_type(old_file):
    model, _, description = open_weights(old_file)
    assert description.model_name == "xception_small" and description.task == "classification"
    assert description.class_names == ("cat", "dog", "owl") and description.num_classes == 3
    assert description.preprocessing == Preprocessing(image_size=36, crop_fraction=0.8, interpolation="bicubic")
    assert description.image_size == 36 and description.data["path"] == "/data/pets"
    assert description.provenance == {"recipe": "fashion_mnist_demo", "step": 12, "metrics": {"top1": 0.5},
                                      "git_commit": "8feb92b"}


def test_description_round_trips_through_a_file(tmp_path):
    model = create_model("deeplabv3plus_small", num_classes=11, in_channels=1)
    written = WeightsDescription(
        model_name="deeplabv3plus_small", num_classes=11, in_channels=1, task="segmentation", image_size=56,
        class_names=tuple(f"c{i}" for i in range(11)),
        preprocessing=Preprocessing(image_size=56, source_size=56), data={"source": "mosaic_masks", "path": None},
        provenance={"recipe": "mosaic_segmentation", "init": {"weights": "x", "sha256": "0" * 64}},
    )
    save_weights(model, tmp_path / "w.safetensors", metadata=written.to_metadata())
    _, _, read = open_weights(tmp_path / "w.safetensors")
    assert read == WeightsDescription(**{**written.__dict__, "model_config": read.model_config})
    assert read.model_config["output_stride"] == model.config.output_stride


def test_published_weights_describe_their_preparation():
    description = XCEPTION_IMAGENET.describe()
    assert description.preprocessing.crop_fraction == 0.8975 and description.image_size == 299
    assert len(description.class_names) == 1000 and description.task == "classification"


def test_weights_at_a_non_default_size_predict_and_export_at_that_size(old_file, tmp_path, capsys):
    """Weights evaluated at 36 px (xception_small's default is 28) run at 36 px everywhere."""
    _, _, description = open_weights(old_file)
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8))
    assert prediction_transform(description.preprocessing, in_channels=3)(photo).shape == (3, 36, 36)
    onnx = pytest.importorskip("onnx")
    out = tmp_path / "m.onnx"
    assert cli_main(["export", "--weights", str(old_file), "--format", "onnx", "--out", str(out)]) == 0
    assert "36x36" in capsys.readouterr().out
    shape = [d.dim_value for d in onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim]
    assert shape[1:] == [3, 36, 36]


def test_the_session_engine_runs_at_the_described_size(old_file):
    from xception.inference.session import InferenceSession

    session = InferenceSession.open(old_file, runtime="onnxruntime", precision="fp32", device="cpu")
    assert session.image_size == 36 and session.engine(torch.zeros(2, 3, 36, 36)).shape == (2, 3)


RAW_KEYS = ("class_names", "data", "preprocessing", "multilabel", "task", "recipe", "metrics", "weights", "init")


def test_weight_metadata_keys_are_read_only_by_the_description():
    """No module but `xception.description` indexes a weight file's metadata by its descriptive keys
    (data/shards.py reads its own shard index, which has a `class_names` too)."""
    root = Path(xception.__file__).parent
    pattern = re.compile(r"metadata(\[|\.get\()\s*[\"'](" + "|".join(RAW_KEYS) + r")[\"']")
    readers = sorted(str(p.relative_to(root)) for p in root.rglob("*.py") if pattern.search(p.read_text()))
    assert readers == ["data/shards.py", "description.py"]


@pytest.mark.parametrize("name,overrides", [
    # BlockSpec tuples (entry and exit flows), a single BlockSpec (the middle flow), tuples and numbers.
    ("xception_small", dict(
        entry_flow=(BlockSpec((16, 24), first_activation=False, pool=True), BlockSpec((32,) * 3, stride=2)),
        middle_flow=BlockSpec((32, 32), sepconv_activation=True), middle_repeats=2,
        exit_flow=(BlockSpec((40, 48), pool=True), BlockSpec((56, 64), first_activation=False, residual=False,
                                                             end_activation=True)),
        stem_channels=(8, 16), segments=4, mid_activation="elu", fc_layers=(24,), width=1.0, depthwise_bn=True)),
    ("inception_v3_small", dict(width=0.1, padding="valid")),
])
def test_a_non_default_config_round_trips_through_a_file_with_identical_outputs(name, overrides, tmp_path):
    torch.manual_seed(0)
    model = create_model(name, num_classes=5, in_channels=1, **overrides).eval()
    path = save_weights(model, tmp_path / "w.safetensors", metadata={"class_names": list("abcde")})
    loaded, _, description = open_weights(path)
    assert loaded.config == model.config and description.model_config is not None
    size = 64 if name.startswith("inception") else 32
    images = torch.rand(3, 1, size, size) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(images), model(images))


DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("name,config", [
    ("xception_small", dict(width=0.125, middle_repeats=1, exit_flow=(
        BlockSpec((40, 48), pool=True), BlockSpec((56, 64), first_activation=False, residual=False, end_activation=True)))),
    ("inception_v3_small", dict(width=0.05)),
])
def test_files_written_before_the_weights_contract_open_with_their_outputs(name, config):
    """tests/data holds files (and their logits) written by the code at 9579c8d, before the one
    `open_weights`: they open as the same model, with the same classes and bit-identical outputs."""
    from safetensors.torch import load_file

    outputs = load_file(DATA / "outputs_at_9579c8d.safetensors")
    model, spec, description = open_weights(DATA / f"{name}_written_at_9579c8d.safetensors")
    expected = create_model(name, num_classes=spec.num_classes, in_channels=spec.in_channels, **config)
    assert spec.name == name and spec.config == expected.config
    assert description.class_names == tuple(f"c{i}" for i in range(spec.num_classes))
    assert description.provenance == {"recipe": "demo", "step": 7}
    with torch.no_grad():
        assert torch.equal(model(outputs[f"{name}.input"]), outputs[f"{name}.logits"])


def test_save_trained_writes_what_open_weights_reads(tmp_path):
    from xception.models.trained import save_trained

    torch.manual_seed(0)
    model = create_model("deeplabv3plus_small", num_classes=3, output_stride=8).eval()
    _, spec, description = open_weights(save_weights(model, tmp_path / "a.safetensors"))
    path = save_trained(tmp_path / "b.safetensors", model, description)
    reopened, respec, redescription = open_weights(path)
    assert respec == spec and respec.config.output_stride == 8 and redescription == description
    images = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(reopened(images), model(images))
    other = dataclasses.replace(description, num_classes=4)
    with pytest.raises(ValueError, match="4 classes"):
        save_trained(tmp_path / "c.safetensors", model, other)
