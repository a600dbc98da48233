"""The ONNX export onnxruntime and OpenVINO run, cached on disk across processes: made once per
weights, input size and exporter version; an incomplete or corrupt entry is exported again with a
warning, never used."""

from __future__ import annotations

import logging

import pytest
import torch

from xception import create_model
from xception.file_digest import file_sha256


def small_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model("xception_small", num_classes=4, in_channels=1, width=0.125, middle_repeats=1).eval()


@pytest.fixture
def counted_exports(monkeypatch):
    pytest.importorskip("onnxruntime")
    import xception.deploy.export as export

    calls = []
    real = export.export_model

    def counting(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(export, "export_model", counting)
    return export, calls


def test_the_export_is_made_once_and_reused(tmp_path, counted_exports, one_thread):
    export, calls = counted_exports
    first = export.export_for_runtimes(small_model(), tmp_path, image_size=28)
    again = export.export_for_runtimes(small_model(), tmp_path, image_size=28)
    assert first == again and len(calls) == 1
    assert (tmp_path / (first.name + ".sha256")).read_text().strip() == file_sha256(first)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.name, first.name + ".sha256"])  # no temporary
    # Other weights or another size: another entry, never the old one.
    other = export.export_for_runtimes(small_model(seed=1), tmp_path, image_size=28)
    bigger = export.export_for_runtimes(small_model(), tmp_path, image_size=32)
    assert len({first, other, bigger}) == 3 and len(calls) == 3


@pytest.mark.parametrize("damage", ["truncated", "no checksum"])
def test_a_corrupt_entry_is_exported_again_with_a_warning(damage, tmp_path, counted_exports, caplog, one_thread):
    from xception.deploy.engines import onnxruntime_engine

    export, calls = counted_exports
    model = small_model()
    path = export.export_for_runtimes(model, tmp_path, image_size=28)
    if damage == "truncated":  # a writer killed midway through, as a plain write would leave it
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.with_name(path.name + ".sha256").unlink()
    with caplog.at_level(logging.WARNING):
        again = export.export_for_runtimes(model, tmp_path, image_size=28)
    assert again == path and len(calls) == 2
    assert f"the cached ONNX export {path} is incomplete or corrupt" in caplog.text
    images = torch.rand(2, 1, 28, 28) * 2 - 1
    with torch.no_grad():
        expected = model(images)
    torch.testing.assert_close(onnxruntime_engine(again)(images), expected, atol=1e-4, rtol=1e-4)


def test_a_second_session_builds_from_the_cached_export(tmp_path, monkeypatch, counted_exports):
    from xception.inference.session import InferenceSession
    from xception.models.weights import save_weights

    export, calls = counted_exports
    monkeypatch.setenv("XCEPTION_HOME", str(tmp_path / "home"))
    weights = save_weights(small_model(), tmp_path / "w.safetensors", metadata={
        "class_names": list("abcd"), "data": {"source": "fashion_mnist", "image_size": 28, "in_channels": 1}})
    for _ in range(2):
        session = InferenceSession.open(weights, runtime="onnxruntime", precision="fp32", device="cpu")
        assert session.engine.runtime == "onnxruntime"
    assert len(calls) == 1 and len(list((tmp_path / "home" / "exports").glob("*.onnx"))) == 1


def test_openvino_keeps_its_compiled_model_in_the_cache_and_answers_the_same(tmp_path, one_thread):
    pytest.importorskip("openvino")
    pytest.importorskip("onnxruntime")
    from xception.deploy.engines import openvino_engine
    from xception.deploy.export import export_for_runtimes

    model = small_model()
    path = export_for_runtimes(model, tmp_path, image_size=28)
    images = torch.rand(2, 1, 28, 28) * 2 - 1
    first = openvino_engine(path, precision="fp32", cache_dir=tmp_path / "openvino")(images)
    blobs = sorted((tmp_path / "openvino").iterdir())
    assert blobs  # OpenVINO wrote its compiled model
    second = openvino_engine(path, precision="fp32", cache_dir=tmp_path / "openvino")(images)
    assert sorted((tmp_path / "openvino").iterdir()) == blobs  # loaded, not compiled into a new entry
    torch.testing.assert_close(second, first, rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(first, model(images), atol=1e-4, rtol=1e-4)
