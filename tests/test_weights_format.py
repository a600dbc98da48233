"""This project's weight format (safetensors + identity metadata), conversion, and clear failures."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from xception import create_model
from xception.cli import main as cli_main
from xception.models.convert import convert_weights
from xception.models.weights import load_weights, read_metadata, save_weights

NUM_CLASSES = 5


class NotATensor:
    """Any Python object a state dict should not contain."""


@pytest.fixture(scope="module")
def small_model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("xception_small", num_classes=NUM_CLASSES)
    with torch.no_grad():  # make the BN statistics non-trivial so a lost buffer shows
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture(scope="module")
def small_file(small_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "small.safetensors"
    save_weights(small_model, path, metadata={"class_names": list("abcde"), "run": "test"})
    return path


@pytest.mark.parametrize("name", ["xception_small", "inception_v3_small"])
def test_save_weights_round_trip_gives_identical_state_and_outputs(name, tmp_path):
    torch.manual_seed(1)
    model = create_model(name, num_classes=NUM_CLASSES).eval()
    path = save_weights(model, tmp_path / f"{name}.safetensors")
    loaded = create_model(name, num_classes=NUM_CLASSES, weights=path).eval()
    for (key, value), (other_key, other) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert key == other_key and torch.equal(value, other), key
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_read_metadata_describes_the_model(small_model, small_file):
    metadata = read_metadata(small_file)
    assert metadata["format_version"] == 1
    assert metadata["model_name"] == "xception_small"
    assert metadata["num_classes"] == NUM_CLASSES == small_model.num_classes
    assert metadata["in_channels"] == 3
    assert metadata["class_names"] == list("abcde")
    assert metadata["run"] == "test"
    assert metadata["config"] == json.loads(json.dumps(dataclasses.asdict(small_model.config)))
    assert metadata["config"]["width"] == 0.25 and metadata["config"]["middle_repeats"] == 3


def test_save_weights_rejects_bad_metadata(small_model, tmp_path):
    with pytest.raises(ValueError, match="may not set.*num_classes"):
        save_weights(small_model, tmp_path / "a.safetensors", metadata={"num_classes": 3})
    with pytest.raises(ValueError, match="class_names must be a list of num_classes=5"):
        save_weights(small_model, tmp_path / "a.safetensors", metadata={"class_names": ["a"]})


def test_load_weights_wrong_variant_names_the_differing_config(small_file):
    with pytest.raises(ValueError, match=r"holds 'xception_small' with mid_activation=None.*'relu'"):
        create_model("xception_small", num_classes=NUM_CLASSES, mid_activation="relu", weights=small_file)


def test_load_weights_wrong_architecture_names_the_first_tensor(small_model, tmp_path):
    path = tmp_path / "plain.pt"
    torch.save(small_model.state_dict(), path)  # no metadata: only the tensors can tell
    with pytest.raises(ValueError, match=r"'stem.conv1.weight' has shape \(8, 3, 3, 3\) but 'stem.conv1.weight'.*needs \(16, 3, 3, 3\)"):
        create_model("xception_small", num_classes=NUM_CLASSES, width=0.5, weights=path)
    with pytest.raises(ValueError, match=r"no place in model 'inception_v3_small'"):
        create_model("inception_v3_small", num_classes=NUM_CLASSES, weights=path)


def test_load_weights_wrong_num_classes_says_what_to_do(small_file):
    with pytest.raises(ValueError, match=r"'classifier.weight' has shape \(5, 512\).*create the model with num_classes=5"):
        create_model("xception_small", num_classes=7, weights=small_file)


def test_load_weights_missing_tensor_is_named(small_model, tmp_path):
    state = dict(small_model.state_dict())
    del state["middle_flow.block6.main.bn2.running_var"]
    path = tmp_path / "incomplete.pt"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"lacks 'middle_flow.block6.main.bn2.running_var'"):
        create_model("xception_small", num_classes=NUM_CLASSES, weights=path)


def test_load_weights_missing_path_and_corrupt_files_fail_clearly(small_file, tmp_path):
    model = create_model("xception_small", num_classes=NUM_CLASSES)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_weights(model, tmp_path / "nope.safetensors")
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(small_file.read_bytes()[: small_file.stat().st_size // 2])
    with pytest.raises(ValueError, match="could not be read as safetensors"):
        load_weights(model, truncated)
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not weights at all" * 10)
    with pytest.raises(ValueError, match="not a weight file this project reads"):
        load_weights(model, garbage)
    import h5py

    with h5py.File(tmp_path / "whole.h5", "w") as f:
        f.attrs["layer_names"] = [b"block1_conv1"]
        f.create_dataset("block1_conv1/block1_conv1/kernel:0", data=torch.zeros(3, 3, 3, 8).numpy())
    truncated_h5 = tmp_path / "truncated.h5"
    truncated_h5.write_bytes((tmp_path / "whole.h5").read_bytes()[:1000])
    with pytest.raises(ValueError, match="could not be read as HDF5"):
        load_weights(model, truncated_h5)
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_dataset("data", data=[1, 2, 3])
    with pytest.raises(ValueError, match="HDF5 file but not Keras weights"):
        load_weights(model, tmp_path / "other.h5")
    torch.save(model.state_dict(), tmp_path / "model.pt")
    broken_zip = tmp_path / "broken.pt"
    broken_zip.write_bytes((tmp_path / "model.pt").read_bytes()[:5000])
    with pytest.raises(ValueError, match="could not be read by torch.load"):
        load_weights(model, broken_zip)


def test_load_weights_refuses_whole_keras_archives(tmp_path):
    import zipfile

    archive = tmp_path / "xception.keras"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("config.json", "{}")
    with pytest.raises(ValueError, match=r"whole Keras 3 model archive.*save_weights\('NAME.weights.h5'\)"):
        create_model("xception_small", weights=archive)


def test_load_weights_never_unpickles_objects(tmp_path):
    path = tmp_path / "object.pt"
    torch.save({"stem.conv1.weight": torch.zeros(1), "extra": NotATensor()}, path)
    with pytest.raises(ValueError, match="other than tensors, which are not loaded"):
        create_model("xception_small", weights=path)


def test_convert_weights_takes_num_classes_from_the_file_and_round_trips(small_model, tmp_path):
    source = tmp_path / "checkpoint.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in small_model.state_dict().items()}}, source)
    description = convert_weights(source, tmp_path / "out.safetensors", model_name="xception_small")
    assert description.num_classes == NUM_CLASSES and description.model_name == "xception_small"
    loaded = create_model("xception_small", num_classes=NUM_CLASSES, weights=tmp_path / "out.safetensors")
    assert all(torch.equal(a, b) for a, b in zip(small_model.state_dict().values(), loaded.state_dict().values(), strict=True))


def test_cli_convert_writes_our_format_and_reports_errors(small_model, tmp_path, capsys):
    source = tmp_path / "state.pt"
    torch.save(small_model.state_dict(), source)
    assert cli_main(["convert", str(source), str(tmp_path / "a.safetensors"), "--model", "xception_small"]) == 0
    assert read_metadata(tmp_path / "a.safetensors")["num_classes"] == NUM_CLASSES
    assert "wrote" in capsys.readouterr().out
    assert cli_main(["convert", str(source), str(tmp_path / "b.safetensors"), "--model", "xception"]) == 2
    assert "has no place in model 'xception'" in capsys.readouterr().err
    assert not (tmp_path / "b.safetensors").exists()


def test_torchvision_inception_v3_state_dict_loads_into_inception_v3(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    reference = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False, num_classes=10)
    path = tmp_path / "inception_v3_google.pth"
    torch.save(reference.state_dict(), path)
    model = create_model("inception_v3", num_classes=10, weights=path)
    assert torch.equal(model.classifier.weight, reference.fc.weight)
    assert torch.equal(model.Mixed_7c.branch_pool.conv.weight, reference.Mixed_7c.branch_pool.conv.weight)
