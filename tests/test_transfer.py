"""`xception experiment transfer` end to end at a toy size: every arm, shot count and seed trains,
and the report states the study's numbers (the committed report is reports/transfer/)."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_transfer_study_runs_every_arm_and_writes_its_report(tmp_path, fashion_mnist, capsys):
    from xception.cli import main

    out = tmp_path / "report"
    assert main(["experiment", "transfer", "--seeds", "2", "--out", str(out), "--runs-dir", str(tmp_path / "runs"),
                 "--data", str(fashion_mnist), "--threads", "1", "--set", "shots=[2,4]", "--set", "ablation_shots=4",
                 "--set", "pretrain_examples=256", "--set", "pretrain_epochs=1", "--set", "finetune_steps=6",
                 "--set", "batch_size=5", "--set", "head_steps=2", "--set", "segmentation_mosaics=32",
                 "--set", "segmentation_val_mosaics=16"]) == 0
    results = json.loads((out / "transfer.json").read_text())
    cells = {(r["shots"], r["arm"]) for r in results["rows"]}
    assert cells == {(2, "fine-tuned"), (2, "fine-tuned whole network"), (2, "from scratch"), (4, "fine-tuned"),
                     (4, "fine-tuned whole network"), (4, "from scratch"), (4, "fine-tuned, BatchNorm trains"),
                     (4, "fine-tuned, no head-only phase")}
    assert len(results["rows"]) == 16 and all(0.0 <= r["top1"] <= 1.0 for r in results["rows"])
    assert len(results["segmentation"]) == 4
    fine_tuned = json.loads((tmp_path / "runs" / "shots2" / "fine-tuned" / "seed0" / "config.json").read_text())
    assert fine_tuned["init"]["reason"] == "the file's classes are not the data's"  # classes 0-4 -> 5-9
    scratch = json.loads((tmp_path / "runs" / "shots2" / "from_scratch" / "seed0" / "config.json").read_text())
    assert scratch["init"] is None
    report = (out / "report.md").read_text()
    assert "2 per class, fine-tuned − from scratch" in report and (out / "transfer.png").is_file()
    capsys.readouterr()
    assert main(["experiment", "transfer", "--set", "shot=3"]) == 2
    assert "unknown transfer study field(s) ['shot']" in capsys.readouterr().err


def test_transfer_arms_are_the_named_recipes():
    import dataclasses

    from xception.experiments.transfer import SCRATCH, WHOLE_NETWORK
    from xception.train.recipes import get_recipe

    assert WHOLE_NETWORK.recipe_overrides == SCRATCH.recipe_overrides  # the same training, other weights
    whole = get_recipe("finetune", **dict(WHOLE_NETWORK.recipe_overrides))
    assert whole == dataclasses.replace(get_recipe("finetune_whole"), name="finetune")
