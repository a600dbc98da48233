"""Ensembles (`xception.inference.ensemble`): the mean of the members' calibrated probabilities. One
member is the model; two copies of a model are the model; two models are the mean of their
probabilities (to 1e-6 on the same runtime); members whose classes differ are refused by name."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from xception import create_model
from xception.cli import main
from xception.description import Decision, Preprocessing, WeightsDescription
from xception.inference.ensemble import Ensemble, EnsembleError
from xception.inference.session import InferenceSession
from xception.models.weights import save_weights

NAMES = ("ant", "bee", "cat")
OPTIONS = dict(runtime="onnxruntime", precision="fp32", device="cpu")


def write_weights(path, *, seed: int, names=NAMES, decision: Decision | None = None, size: int = 16):
    torch.manual_seed(seed)
    model = create_model("xception_small", num_classes=3, in_channels=1, width=0.125, middle_repeats=1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # one batch sets the statistics: activations of a useful size
    with torch.no_grad():
        model.train()(torch.rand(16, 1, size, size) * 2 - 1)
        model.classifier.weight *= 20  # probabilities away from 1/3, so that members differ visibly
    description = WeightsDescription(model_name="xception_small", num_classes=3, in_channels=1, task="classification",
                                     image_size=size, class_names=names, preprocessing=Preprocessing(image_size=size),
                                     data={"source": "imagefolder", "path": None, "image_size": size, "in_channels": 1},
                                     decision=decision)
    return save_weights(model.eval(), path, metadata=description.to_metadata())


def write_photos(folder, *, per_class: int, size: tuple[int, int], seed: int):
    """A folder of class folders of NAMES, each with `per_class` random grey photos of `size` (H, W)."""
    rng = np.random.default_rng(seed)
    for name in NAMES:
        (folder / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, size, dtype=np.uint8)).save(folder / name / f"{i}.png")
    return folder


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    root = tmp_path_factory.mktemp("ensemble")
    first = write_weights(root / "a.safetensors", seed=0)
    copy = shutil.copy(first, root / "a_copy.safetensors")
    other = write_weights(root / "b.safetensors", seed=1, decision=Decision(temperature=2.0))
    images = torch.rand(5, 1, 16, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1
    return root, first, copy, other, images


def test_an_ensemble_of_one_is_the_model(members):
    _, first, _, _, images = members
    alone = InferenceSession.open(first, **OPTIONS).probabilities(images)
    assert torch.equal(Ensemble.open([first], **OPTIONS).probabilities(images), alone)


def test_an_ensemble_of_two_copies_is_the_model(members):
    _, first, copy, _, images = members
    alone = InferenceSession.open(first, **OPTIONS).probabilities(images)
    torch.testing.assert_close(Ensemble.open([first, copy], **OPTIONS).probabilities(images), alone,
                               atol=1e-6, rtol=0)


def test_an_ensemble_of_two_models_is_the_mean_of_their_calibrated_probabilities(members):
    _, first, _, other, images = members
    a, b = (InferenceSession.open(w, **OPTIONS) for w in (first, other))
    with torch.no_grad():
        b_calibrated = (b.model(images) / 2.0).softmax(1)  # b's temperature 2 applies to b alone
    torch.testing.assert_close(b.probabilities(images), b_calibrated, atol=1e-5, rtol=0)
    expected = (a.probabilities(images) + b.probabilities(images)) / 2
    assert (a.probabilities(images) - b.probabilities(images)).abs().max() > 1e-2  # the members differ
    torch.testing.assert_close(Ensemble.open([first, other], **OPTIONS).probabilities(images), expected,
                               atol=1e-6, rtol=0)


def test_members_with_other_class_names_are_refused_naming_both_lists(members, tmp_path):
    _, first, _, _, _ = members
    swapped = write_weights(tmp_path / "swapped.safetensors", seed=3, names=("ant", "cat", "bee"))
    with pytest.raises(EnsembleError, match=re.escape("has ['ant', 'bee', 'cat'], ") + ".*" +
                       re.escape("has ['ant', 'cat', 'bee']")):
        Ensemble.open([first, swapped], **OPTIONS)


def test_predict_and_eval_take_several_weights(members, tmp_path, capsys):
    root, first, _, other, _ = members
    folder = write_photos(tmp_path / "photos", per_class=2, size=(20, 20), seed=0)
    files = sorted(str(p) for p in folder.glob("*/*.png"))
    weights = ["--weights", str(first), "--weights", str(other)]
    assert main(["predict", *files, *weights, "--runtime", "onnxruntime", "--precision", "fp32", "--device", "cpu",
                 "--top-k", "3"]) == 0
    captured = capsys.readouterr()
    assert "ensemble of 2" in captured.err
    ensemble = Ensemble.open([first, other], **OPTIONS)
    expected = ensemble.probabilities(torch.stack([ensemble.prepare(f) for f in files]))
    printed = [[float(line.split()[0]) for line in block.splitlines()[1:]]
               for block in re.split(r"\n(?=\S)", captured.out.strip())]
    assert np.allclose([sorted(row, reverse=True) for row in printed],
                       expected.sort(1, descending=True).values.numpy(), atol=1e-4)
    assert main(["eval", *weights, "--data", str(folder), "--split", "all", "--runtime", "onnxruntime",
                 "--precision", "fp32", "--device", "cpu", "--json"]) == 0
    assert '"examples": 6' in capsys.readouterr().out


def test_serve_answers_with_the_ensembles_probabilities(members, tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from xception.serve.app import create_app
    from xception.serve.config import ServeConfig
    from xception.serve.model import load_served_model

    _, first, _, other, _ = members
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (20, 20), dtype=np.uint8)).save(photo)
    served = load_served_model([str(first), str(other)], **OPTIONS)
    ensemble = Ensemble.open([first, other], **OPTIONS)
    expected = ensemble.probabilities(ensemble.prepare(photo)[None])[0]
    with TestClient(create_app(served, ServeConfig())) as client:
        answer = client.post("/predict?top_k=3", content=photo.read_bytes()).json()
    assert "decision" not in answer  # an ensemble decides by argmax: the first prediction
    got = {row["class_name"]: row["probability"] for row in answer["predictions"]}
    assert got == pytest.approx(dict(zip(NAMES, expected.tolist(), strict=True)), abs=1e-6)


def test_weights_without_a_policy_answer_as_before(members):
    _, first, _, _, images = members
    session = InferenceSession.open(first, **OPTIONS)
    assert session.description.decision is None
    probabilities = session.probabilities(images)
    assert torch.equal(probabilities, session.logits(images).softmax(dim=1))  # no temperature, bit for bit
    assert session.decide(probabilities) is None  # argmax, and no decision line in predict's output


def test_an_ensemble_file_weighs_its_members_and_applies_its_own_temperature(members, tmp_path):
    from xception.inference.ensemble import EnsembleFile

    root, first, _, other, images = members
    a, b = (InferenceSession.open(w, **OPTIONS).probabilities(images) for w in (first, other))
    folder = tmp_path / "ensembles"
    folder.mkdir()
    file = EnsembleFile((str(first), str(other)), (2.0, 1.0), Decision(temperature=1.7)).write(folder / "e.json")
    written = json.loads(file.read_text())
    assert [m["weights"] for m in written["members"]] == ["../../" + root.name + "/a.safetensors",
                                                           "../../" + root.name + "/b.safetensors"]
    ensemble = Ensemble.open([file], **OPTIONS)
    assert ensemble.weights == pytest.approx((2 / 3, 1 / 3)) and ensemble.decision.temperature == 1.7
    mean = (2 * a + b) / 3  # the weighted mean of the members' calibrated probabilities
    torch.testing.assert_close(ensemble.mean_logits(images).softmax(1), mean, atol=1e-6, rtol=0)
    expected = (mean.double().log() / 1.7).softmax(1).float()  # then the ensemble's temperature
    torch.testing.assert_close(ensemble.probabilities(images), expected, atol=1e-6, rtol=0)
    assert "ensemble of 2 (weights 0.67, 0.33)" in ensemble.describe()


@pytest.mark.parametrize("content, message", [
    ("not json", "is not an ensemble file (JSON)"),
    ('{"members": [{"weights": "a.safetensors"}]}', '"format": "xception-ensemble/1"'),
    ('{"format": "xception-ensemble/1", "members": [{"weights": "a.safetensors", "weight": -1}]}',
     'member 0 must be {"weights": FILE, "weight": W > 0}'),
    ('{"format": "xception-ensemble/1", "members": [{"weights": "a.safetensors"}], "decision": {"temperature": 0}}',
     "its decision is not a decision policy: temperature must be > 0"),
])
def test_a_bad_ensemble_file_is_refused_by_name(content, message, tmp_path):
    file = tmp_path / "bad.json"
    file.write_text(content)
    with pytest.raises(EnsembleError, match=re.escape(message)):
        Ensemble.open([file], **OPTIONS)
    with pytest.raises(FileNotFoundError, match="no such ensemble file"):
        Ensemble.open([tmp_path / "missing.json"], **OPTIONS)


def test_members_that_prepare_images_differently_each_get_their_own_in_eval_and_serve(members, tmp_path, capsys):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from xception.eval.evaluate import evaluate_weights
    from xception.serve.app import create_app
    from xception.serve.config import ServeConfig
    from xception.serve.model import load_served_model

    _, first, _, _, _ = members
    larger = write_weights(tmp_path / "larger.safetensors", seed=4, size=24)  # 24 px: another preparation
    folder = write_photos(tmp_path / "photos", per_class=3, size=(30, 40), seed=5)
    files = sorted(folder.glob("*/*.png"))
    ensemble = Ensemble.open([first, larger], **OPTIONS)
    assert not ensemble.same_preparation()
    # Each member prepares each photo its own way (16 and 24 px): the mean of their own probabilities.
    alone = [m.probabilities(torch.stack([m.prepare(f) for f in files])) for m in ensemble.members]
    assert [m.image_size for m in ensemble.members] == [16, 24]
    expected = (alone[0] + alone[1]) / 2
    assert (alone[0] - alone[1]).abs().max() > 1e-2  # the members differ
    torch.testing.assert_close(ensemble.probabilities(torch.stack([ensemble.prepare(f) for f in files])), expected,
                               atol=1e-6, rtol=0)  # predict's path: packed rows
    metrics = evaluate_weights([str(first), str(larger)], source=None, data_path=str(folder), split="all",
                               batch_size=4, device="cpu", runtime="onnxruntime", precision="fp32",
                               bad_images="error", bad_image_fraction=0.1, keep_logits=True)
    assert metrics["examples"] == 9
    torch.testing.assert_close(metrics["logits"].softmax(1), expected, atol=1e-6, rtol=0)
    served = load_served_model([str(first), str(larger)], **OPTIONS)
    with TestClient(create_app(served, ServeConfig())) as client:
        answer = client.post("/predict?top_k=3", content=files[4].read_bytes()).json()
        refused = client.post(f"/v2/models/{served.name}/infer", json={"inputs": [
            {"name": "input", "shape": [1, 1, 16, 16], "datatype": "FP32", "data": [0.0] * 256}]})
        inputs_listed = [t["name"] for t in client.get(f"/v2/models/{served.name}").json()["inputs"]]
    got = {row["class_name"]: row["probability"] for row in answer["predictions"]}
    assert got == pytest.approx(dict(zip(NAMES, expected[4].tolist(), strict=True)), abs=1e-6)
    assert refused.status_code == 400 and "members prepare images differently (1x16x16, 1x24x24)" in refused.text
    assert inputs_listed == ["image"]
