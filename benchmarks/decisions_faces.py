"""Issue 28's run, measured: faces against non-faces from scikit-image's `lfw_subset`, before and after
the decision policy that training stores with the weights.

    python benchmarks/decisions_faces.py --out reports/decisions

Writes the folders (60 images of each class to train on, 25% of them held out for validation, and a
separate test folder of the other 40 of each class), trains a small Xception with the flags of
tests/test_decisions_faces.py, then evaluates the final weights on the test folder (onnxruntime
fp32) as `xception eval --split all` does, with and without `--tta flip` (images per second: the best
of three passes of each). Before: argmax of the raw
softmax (what every file without a policy gets); after: the stored threshold on the probabilities
through the stored temperature. Into --out: results.json, results.md, the reliability diagrams of the
validation split (from training) and of the test folder, curves.png and a few `xception predict` lines.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

TRAIN_PER_CLASS = 60  # of each class's 100: 45 train and 15 validation (--val-split 0.25); the other 40 test


def write_faces(root: Path) -> Path:
    """root/train/{face,nonface}/ (60 each) and root/test/{face,nonface}/ (40 each): lfw_subset's
    25 px crops (100 faces, then 100 non-faces) resized to 64 px, as issue 28 prepared them."""
    from PIL import Image
    from skimage.data import lfw_subset

    images = lfw_subset()
    rng = np.random.default_rng(0)
    for label, block in (("face", images[:100]), ("nonface", images[100:])):
        order = rng.permutation(100)
        for split, chosen in (("train", order[:TRAIN_PER_CLASS]), ("test", order[TRAIN_PER_CLASS:])):
            (root / split / label).mkdir(parents=True, exist_ok=True)
            for i in chosen:
                pixels = (block[i] * 255).round().astype(np.uint8)
                Image.fromarray(pixels).resize((64, 64), Image.BILINEAR).save(root / split / label / f"{i:03d}.png")
    return root


TTAS = ("flip", "flip+5crop")  # the test-time augmentations measured beside none


def train_argv(data: Path, out: Path) -> list[str]:
    """The run of the test: xception_small at width 1/8, 32 px, 6 epochs of batch 15, whole network (AdamW)."""
    return ["train", "--threads", "1", "--model", "xception_small", "--set", "model.width=0.125",
            "--set", "model.middle_repeats=1", "--data", str(data), "--val-split", "0.25", "--image-size", "32",
            "--in-channels", "1", "--recipe", "finetune_whole", "--epochs", "6", "--batch-size", "15",
            "--precision", "fp32", "--no-channels-last", "--device", "cpu", "--workers", "0", "--no-progress",
            "--set", "trackers=[]", "--out", str(out)]


def cli(argv: list[str]) -> str:
    from xception.cli import main

    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert main(argv) == 0, argv
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("reports/decisions"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="decisions-faces-") as work:
        root = write_faces(Path(work))
        run = root / "run"
        threads = torch.get_num_threads()
        start = time.perf_counter()
        cli(train_argv(root / "train", run))
        train_s = time.perf_counter() - start
        torch.set_num_threads(threads)  # training's --threads 1 is for training alone
        weights = str(run / "weights.safetensors")
        evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
                 if json.loads(line)["kind"] == "eval"]
        evaluate = ["eval", "--weights", weights, "--data", str(root / "test"), "--split", "all", "--device", "cpu",
                    "--runtime", "onnxruntime", "--precision", "fp32", "--json"]
        test = json.loads(cli([*evaluate, "--reliability", str(args.out / "test_reliability.png")]))
        augmented = {tta: json.loads(cli([*evaluate, "--tta", tta])) for tta in TTAS}
        # The best speed of three passes each: the first includes the engine's warm-up.
        for tta, metrics in (("none", test), *augmented.items()):
            metrics["images_per_second"] = max(json.loads(cli([*evaluate, "--tta", tta]))["images_per_second"]
                                               for _ in range(3))
        files = [sorted((root / "test" / label).glob("*.png"))[0] for label in ("face", "nonface")]
        predicted = cli(["predict", *map(str, files), "--weights", weights, "--device", "cpu", "--runtime",
                         "onnxruntime", "--precision", "fp32", "--top-k", "2"]).replace(str(root) + "/", "")
        refit, ensemble = _calibrate_refit_and_ensemble(root, run)
        shutil.copy(run / "reliability.png", args.out / "validation_reliability.png")
        shutil.copy(run / "curves.png", args.out / "curves.png")
    results = {
        "command": "python benchmarks/decisions_faces.py --out " + str(args.out),
        "cpu": _cpu_name(), "python": platform.python_version(), "train_s": round(train_s, 1),
        "validation": [{k: row[k] for k in ("step", "top1", "roc_auc", "eer")} for row in evals],
        "best_step_by_roc_auc": max(evals, key=lambda row: row["roc_auc"])["step"],
        "decision": test["decision"],
        "test": {k: v for k, v in test.items() if k not in ("runtime",)},
        "test_tta": {tta: {k: metrics[k] for k in ("top1", "roc_auc", "accuracy", "ece", "ece_calibrated",
                                                   "images_per_second")} for tta, metrics in augmented.items()},
        "predict": predicted,
        "refit_on_test": refit,
        "ensemble_on_test": ensemble,
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    (args.out / "results.md").write_text(_table(results))
    print(_table(results))


def _calibrate_refit_and_ensemble(root: Path, run: Path) -> tuple[dict, dict]:
    """`xception calibrate` of the weights on the test folder (max F1), then of the ensemble of the
    weights and that refit (an ensemble file): each one's decision and in-sample ECE and NLL."""
    from xception.eval.calibrate import calibrate_file

    def summary(result) -> dict:
        return {"decision": result.decision.reason(), "temperature": result.decision.temperature,
                "ece": [result.before["ece"], result.after["ece"]], "nll": [result.before["nll"], result.after["nll"]]}

    test, weights = str(root / "test"), str(run / "weights.safetensors")
    refit = calibrate_file(weights, out=root / "refit.safetensors", rule="max_f1", data_path=test, split="all",
                           device="cpu")
    ensemble = calibrate_file([weights, str(refit.out)], out=root / "ensemble.json", rule="eer", data_path=test,
                              split="all", device="cpu")
    return summary(refit), summary(ensemble)


def _table(results: dict) -> str:
    t = results["test"]
    rows = [
        ("decision", "argmax (0.5)", f"{results['decision']}"),
        ("accuracy", f"{t['top1']:.3f}", f"{t['accuracy']:.3f}"),
        ("mean confidence (top-1 0.5: over-confident above it)", f"{t['confidence']:.3f}",
         f"{t['confidence_calibrated']:.3f}"),
        ("ECE (15 bins)", f"{t['ece']:.3f}", f"{t['ece_calibrated']:.3f}"),
        ("NLL", f"{t['loss']:.3f}", f"{t['nll_calibrated']:.3f}"),
    ]
    lines = [f"Test folder, {t['examples']} images (ROC-AUC {t['roc_auc']:.3f}, EER {t['eer']:.3f}); "
             f"`{results['command']}` on {results['cpu']}", "",
             "| | before (no policy) | after (stored policy) |", "|---|---:|---:|",
             *(f"| {a} | {b} | {c} |" for a, b, c in rows), "",
             *(f"--tta {tta}: accuracy {f['accuracy']:.3f}, ECE {f['ece_calibrated']:.3f}, "
               f"{f['images_per_second']:.0f} images/s against {t['images_per_second']:.0f} without"
               for tta, f in results["test_tta"].items()),
             *(f"calibrate {what} on the test folder: {r['decision']}, temperature {r['temperature']:.3g}, "
               f"ECE {r['ece'][0]:.3f} -> {r['ece'][1]:.3f}, NLL {r['nll'][0]:.4f} -> {r['nll'][1]:.4f}"
               for what, r in (("the weights", results["refit_on_test"]),
                               ("the ensemble of the weights and that refit", results["ensemble_on_test"]))), ""]
    return "\n".join(lines)


def _cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    main()
