"""`calibrate_file`: fit the decision policy of existing weights (trained, converted or published)
on a split of labelled images, and write them with it to a new file.

The policy (`xception.description.Decision`: a temperature, and for two-class and multi-label
weights a threshold chosen by a rule) is fitted on the raw logits of the split, as training fits it
at its end (`xception.tasks.decision.fit_decision`). The input is never written over; segmentation
models (no per-image decision), splits of one class and splits under `MIN_IMAGES` images are refused.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xception.data.config import BadImagePolicy
from xception.description import Decision
from xception.errors import UserError


@dataclass(frozen=True)
class Calibrated:
    """What `calibrate_file` wrote: the new file, its decision, the reliability diagram, and the
    split's ECE and NLL before and after the temperature (in-sample: the split the policy was fitted on)."""

    out: Path
    decision: Decision
    reliability: Path
    before: dict[str, float]
    after: dict[str, float]


def calibrate_file(weights: str, *, out: str | os.PathLike, rule: str | None, source: str | None = None,
                   data_path: str | None = None, split: str | None = None, batch_size: int = 64,
                   device: str | None = None, model_name: str | None = None, ground_truth: str | None = None,
                   bad_images: BadImagePolicy = "error", bad_image_fraction: float = 0.1,
                   progress: bool = False) -> Calibrated:
    """Fit the decision of `weights` on the validation split of their data (or `source` at
    `data_path`; every image of the folder `data_path` with `split="all"`, as `xception eval`
    chooses it) with the threshold `rule` (None: temperature only), and write the weights with it to
    `out`, the reliability diagram beside it (NAME.reliability.png)."""
    from xception.eval.evaluate import evaluate_weights, evaluation_split
    from xception.inference.session import InferenceSession
    from xception.metrics.calibration import calibration_bins, negative_log_likelihood
    from xception.models.weights import save_weights
    from xception.tasks.decision import calibrated_logits, fit_decision
    from xception.tasks.reliability_figure import save_reliability_diagram

    out = Path(out)
    if out.exists() and Path(weights).exists() and out.resolve() == Path(weights).resolve():
        raise UserError(f"--out {out} is the input file; calibrate writes a new file and never over its input")
    session = InferenceSession.open(weights, model_name=model_name, device="cpu")
    description = session.description
    if description.task != "classification":
        raise UserError(f"{weights} holds a {description.task} model: a decision policy is for classifiers "
                        "(one decision per image)")
    # fp32 logits: the policy belongs to the weights, whichever runtime and precision later run them.
    metrics = evaluate_weights(weights, source=source, data_path=data_path, batch_size=batch_size, device=device,
                               precision="fp32", bad_images=bad_images,
                               bad_image_fraction=bad_image_fraction, model_name=model_name,
                               ground_truth=ground_truth, progress=progress, split=split, keep_logits=True)
    logits, targets = metrics["logits"], metrics["targets"]
    recorded_source = source or (description.data or {}).get("source") or "imagenet"
    chosen = evaluation_split(description, recorded_source, data_path, split)
    decision = fit_decision(logits, targets, multilabel=description.multilabel, rule=rule,
                            split="validation" if chosen == "val" else "calibration")
    calibrated = calibrated_logits(logits, decision)

    def scores(scaled) -> dict[str, Any]:
        probabilities = scaled.sigmoid() if description.multilabel else scaled.softmax(1)
        bins = calibration_bins(probabilities, targets, multilabel=description.multilabel)
        return {"bins": bins, "ece": bins.expected_calibration_error(),
                "nll": negative_log_likelihood(scaled, targets, multilabel=description.multilabel)}

    before, after = scores(logits), scores(calibrated)
    written = save_weights(session.model, out,
                           metadata=dataclasses.replace(description, decision=decision).to_metadata())
    reliability = save_reliability_diagram(
        out.with_name(out.stem + ".reliability.png"), {"raw": before.pop("bins"), "calibrated": after.pop("bins")},
        title=f"{Path(str(weights)).name}: {decision.reason()}")
    return Calibrated(written, decision, reliability, before, after)
