"""Hub-format weights both ways: `xception export --format hub` writes a folder with a model card that
huggingface_hub parses; `--weights hf-hub:ORG/NAME[@REVISION]` loads it back through the real
huggingface_hub from a Hub cache laid out in a temporary HF_HOME, offline; timm loads the folders of
the architectures it has, with this project's logits."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from tiny_image_folder import train_argv, write_image_folder
from xception import create_model
from xception.cli import main
from xception.models.trained import open_weights
from xception.models.weights import save_weights


def lay_out_hub_cache(hf_home: Path, repo_id: str, folder: Path, *, commit: str, refs: tuple[str, ...] = ("main",)) -> None:
    """`folder`'s files as huggingface_hub's cache holds a downloaded snapshot: snapshots/<commit>/ and
    refs/<name> naming the commit (the layout `hf_hub_download` reads offline)."""
    repo = hf_home / "hub" / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for path in folder.iterdir():
        shutil.copy(path, snapshot / path.name)
    (repo / "refs").mkdir(exist_ok=True)
    for ref in refs:
        (repo / "refs" / ref).write_text(commit)


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """A temporary HF_HOME, offline, as huggingface_hub's constants read it."""
    import huggingface_hub.constants as constants

    home = tmp_path / "hf_home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


@pytest.fixture(scope="module")
def fine_tuned(tmp_path_factory) -> tuple[Path, Path]:
    """(weights of a two-class run on a tiny folder, that folder)."""
    root = tmp_path_factory.mktemp("hubrun")
    folder = write_image_folder(root / "data", per_class={"train": 12, "val": 6})
    assert main(train_argv(folder, root / "run")) == 0
    return root / "run" / "weights.safetensors", folder


def test_fine_tune_export_then_hf_hub_predicts_the_same(fine_tuned, tmp_path, offline_hub, capsys):
    weights, folder = fine_tuned
    assert main(["export", "--format", "hub", "--weights", str(weights), "--out", str(tmp_path / "hub"),
                 "--repo", "me/dark-light", "--license", "apache-2.0"]) == 0
    assert "timm cannot load it" in capsys.readouterr().out  # xception_small has no timm counterpart
    assert sorted(p.name for p in (tmp_path / "hub").iterdir()) == ["README.md", "config.json", "model.safetensors"]
    lay_out_hub_cache(offline_hub, "me/dark-light", tmp_path / "hub", commit="a" * 40)
    images = sorted(str(p) for p in (folder / "val").rglob("*.png"))
    answers = []
    for source in (str(weights), "hf-hub:me/dark-light"):
        capsys.readouterr()
        assert main(["predict", "--weights", source, "--runtime", "torch", "--top", "2", *images]) == 0
        answers.append(capsys.readouterr().out)
    assert answers[0] == answers[1] and "dark" in answers[0]


def test_the_model_card_states_the_data_classes_counts_and_metrics(fine_tuned, tmp_path):
    from huggingface_hub import ModelCard

    from xception.models.hub_folder import write_hub_folder

    weights, _ = fine_tuned
    folder = write_hub_folder(weights, tmp_path / "hub", repo_id="me/dark-light", license="mit")
    card = ModelCard.load(tmp_path / "hub" / "README.md")
    description = open_weights(weights).description
    metrics = description.provenance["metrics"]
    assert card.data.library_name == "xception" and card.data.license == "mit"
    assert "image-classification" in card.data.tags and card.data.pipeline_tag == "image-classification"
    recorded = {result.metric_type: result.metric_value for result in card.data.eval_results}
    assert recorded["accuracy"] == pytest.approx(metrics["top1"]) and recorded["roc_auc"] == pytest.approx(metrics["roc_auc"])
    assert all(result.dataset_split == "validation" for result in card.data.eval_results)
    text = card.text
    assert "`dark`, `light`" in text and "24 for training, 12 for validation" in text
    assert "recipe: `fashion_mnist_demo`" in text and "hf-hub:me/dark-light" in text
    assert "timm cannot load these weights" in text and folder.timm.architecture is None
    config = json.loads((tmp_path / "hub" / "config.json").read_text())
    assert "architecture" not in config and config["label_names"] == ["dark", "light"]
    assert config["pretrained_cfg"]["input_size"] == [1, 16, 16] and config["pretrained_cfg"]["mean"] == [0.5]


def _random_statistics(model: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            nn.init.uniform_(module.weight, 0.5, 1.5)
            nn.init.uniform_(module.bias, -0.2, 0.2)
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return model.eval()


def test_timm_loads_an_aligned_folder_from_the_hub_cache_with_our_logits(tmp_path, offline_hub):
    timm = pytest.importorskip("timm")
    from xception.models.hub_folder import write_hub_folder

    torch.manual_seed(0)
    model = _random_statistics(create_model("xception41p", num_classes=4))
    weights = save_weights(model, tmp_path / "x41p.safetensors", metadata={"class_names": list("abcd")})
    folder = write_hub_folder(weights, tmp_path / "hub", repo_id="me/x41p")
    assert folder.timm.architecture == "xception41p" and folder.timm.exact
    lay_out_hub_cache(offline_hub, "me/x41p", tmp_path / "hub", commit="b" * 40)
    theirs = timm.create_model("hf-hub:me/x41p", pretrained=True).eval()
    assert theirs.pretrained_cfg["label_names"] == list("abcd") and theirs.num_classes == 4
    images = torch.rand(2, 3, 96, 96) * 2 - 1
    with torch.no_grad():
        ours = open_weights("hf-hub:me/x41p").model(images)
        torch.testing.assert_close(theirs(images), ours, atol=1e-5, rtol=0)
        torch.testing.assert_close(ours, model(images), atol=0, rtol=0)


def test_timm_legacy_xception_gets_the_same_tensors_and_the_card_says_how_it_differs(tmp_path):
    timm = pytest.importorskip("timm")
    from safetensors.torch import load_file

    from xception.models.hub_folder import write_hub_folder

    model = _random_statistics(create_model("xception", num_classes=3))
    weights = save_weights(model, tmp_path / "x.safetensors", metadata={"class_names": list("abc")})
    folder = write_hub_folder(weights, tmp_path / "hub", repo_id="me/x")
    assert folder.timm.architecture == "legacy_xception" and not folder.timm.exact
    theirs = timm.create_model("legacy_xception", pretrained=True, num_classes=3,
                               pretrained_cfg_overlay=dict(file=str(tmp_path / "hub" / "model.safetensors"), num_classes=3))
    ours = model.state_dict()
    renamed = load_file(tmp_path / "hub" / "model.safetensors")
    assert len(renamed) == len(ours) == len(theirs.state_dict())
    assert torch.equal(theirs.state_dict()["fc.weight"], ours["classifier.weight"])
    assert torch.equal(theirs.state_dict()["block1.rep.0.pointwise.weight"],
                       ours["entry_flow.block2.main.sepconv1.pointwise.weight"])
    assert "BatchNorm epsilon 1e-5" in (tmp_path / "hub" / "README.md").read_text()


def test_a_revision_pins_the_weights(tmp_path, offline_hub):
    from xception.models.hub_folder import write_hub_folder

    for seed, commit, refs in ((0, "c" * 40, ("v1",)), (1, "d" * 40, ("main",))):
        torch.manual_seed(seed)
        model = create_model("xception_small", num_classes=2, in_channels=1, width=0.125, middle_repeats=1)
        weights = save_weights(model, tmp_path / f"{seed}.safetensors", metadata={"class_names": ["a", "b"]})
        write_hub_folder(weights, tmp_path / f"hub{seed}", repo_id="me/pinned")
        lay_out_hub_cache(offline_hub, "me/pinned", tmp_path / f"hub{seed}", commit=commit, refs=refs)
    first = open_weights("hf-hub:me/pinned@v1").model.state_dict()
    by_commit = open_weights(f"hf-hub:me/pinned@{'c' * 40}").model.state_dict()
    latest = open_weights("hf-hub:me/pinned").model.state_dict()
    key = "classifier.weight"
    assert torch.equal(first[key], by_commit[key]) and not torch.equal(first[key], latest[key])
    built = create_model("xception_small", num_classes=2, in_channels=1, width=0.125, middle_repeats=1,
                         weights="hf-hub:me/pinned@v1")
    assert torch.equal(built.state_dict()[key], first[key])


def test_an_id_missing_from_the_offline_cache_names_the_id_and_the_cache(offline_hub, tmp_path, capsys):
    from PIL import Image

    photo = tmp_path / "photo.png"
    Image.new("RGB", (40, 30), (90, 120, 200)).save(photo)
    assert main(["predict", "--weights", "hf-hub:me/absent@v2", str(photo)]) == 2
    error = capsys.readouterr().err
    assert "hf-hub:me/absent@v2" in error and str(offline_hub / "hub") in error and "HF_HUB_OFFLINE" in error
    assert main(["predict", "--weights", "hf-hub:absent", str(photo)]) == 2
    assert "hf-hub:ORG/NAME" in capsys.readouterr().err


def test_push_dry_run_lists_the_folder_and_the_card_and_sends_nothing(fine_tuned, tmp_path, monkeypatch, capsys):
    import huggingface_hub

    def refuse(*args, **kwargs):
        raise AssertionError("a dry run must not call the Hub")

    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", refuse)
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", refuse)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    weights, _ = fine_tuned
    assert main(["push", "--weights", str(weights), "--repo", "me/dark-light", "--dry-run",
                 "--folder", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "would upload to https://huggingface.co/me/dark-light (nothing sent)" in out
    for name in ("model.safetensors", "config.json", "README.md"):
        assert name in out
    assert "library_name: xception" in out and "hf-hub:me/dark-light" in out


def test_the_model_card_states_the_frame_and_video_policies():
    from xception.description import Decision, VideoDecision, WeightsDescription
    from xception.models.model_card import _evaluation

    description = WeightsDescription(
        model_name="xception_small", num_classes=2, in_channels=3, task="classification", image_size=32,
        decision=Decision(temperature=1.5, threshold=0.4, rule="eer", split_size=40),
        video_decision=VideoDecision(aggregate="mean", threshold=0.62, rule="eer", split_size=24))
    text = _evaluation(description, {"roc_auc": 0.9})
    assert "temperature 1.500; threshold 0.40 (EER on 40 validation images)" in text
    assert ("Videos (`xception predict VIDEO --aggregate mean`) are decided at the video threshold 0.62 (EER on 24 "
            "calibration videos, the mean of their frames)") in text
