"""`calibrate_file`: fit the decision policy of existing weights (trained, converted or published)
on a split of labelled images, and write them with it to a new file.

The policy (`xception.description.Decision`: a temperature, and for two-class and multi-label
weights a threshold chosen by a rule) is fitted on the raw logits of the split, as training fits it
at its end (`xception.tasks.decision.fit_decision`). The input is never written over; segmentation
models (no per-image decision), splits of one class and splits under `MIN_IMAGES` images are refused.

An ensemble (several weights, or an ensemble file) is fitted the same way on the logits of its
members' mean calibrated probabilities, and written as an ensemble file (`xception.inference.ensemble`)
that lists the members and carries the ensemble's policy; the members' files are left as they are.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xception.data.config import BadImagePolicy
from xception.description import Decision, VideoDecision
from xception.errors import UserError
from xception.tta_names import TTA
from xception.video_names import Aggregate, Crop, FaceChoice

if TYPE_CHECKING:
    from xception.data.video import Sampling

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Calibrated:
    """What `calibrate_file` wrote: the new file, its decision, the reliability diagram, and the
    split's ECE and NLL before and after the temperature (in-sample: the split the policy was fitted on)."""

    out: Path  # the weights with their policy, or an ensemble file
    decision: Decision
    reliability: Path
    before: dict[str, float]
    after: dict[str, float]


def calibrate_file(weights: str | Sequence[str], *, out: str | os.PathLike, rule: str | None, source: str | None = None,
                   data_path: str | None = None, split: str | None = None, batch_size: int = 64,
                   device: str | None = None, model_name: str | None = None, ground_truth: str | None = None,
                   bad_images: BadImagePolicy = "error", bad_image_fraction: float = 0.1,
                   per_class: bool = False, progress: bool = False) -> Calibrated:
    """Fit the decision of `weights` on the validation split of their data (or `source` at
    `data_path`; every image of the folder `data_path` with `split="all"`, as `xception eval`
    chooses it) with the threshold `rule` (None: temperature only), and write the weights with it to
    `out`, the reliability diagram beside it (NAME.reliability.png). `per_class`: multi-label weights
    get a threshold per class too (`fit_decision`). Several `weights`, or an
    ensemble file: the ensemble's policy, written with its members to the ensemble file `out` (.json)."""
    from xception.eval.evaluate import evaluate_weights, evaluation_split
    from xception.inference.ensemble import Ensemble, EnsembleFile, is_ensemble_file
    from xception.inference.session import InferenceSession
    from xception.metrics.calibration import calibration_bins, negative_log_likelihood
    from xception.models.weights import save_weights
    from xception.tasks.decision import calibrated_logits, fit_decision
    from xception.tasks.reliability_figure import save_reliability_diagram

    out = Path(out)
    members = [weights] if isinstance(weights, (str, os.PathLike)) else list(weights)
    ensemble = len(members) > 1 or is_ensemble_file(members[0])
    _refuse_to_overwrite(out, members)
    if ensemble != is_ensemble_file(out):
        raise UserError(f"--out {out}: " + ("an ensemble's policy is written to an ensemble file; name it NAME.json"
                                            if ensemble else "one model's policy is written with its weights; name "
                                            "a .safetensors file (a .json file is an ensemble file)"))
    opened = Ensemble.open(members, model_name=model_name, device="cpu") if ensemble else None
    session = opened.members[0] if opened else InferenceSession.open(members[0], model_name=model_name, device="cpu")
    description = session.description
    if description.task != "classification":
        raise UserError(f"{weights} holds a {description.task} model: a decision policy is for classifiers "
                        "(one decision per image)")
    # fp32 logits: the policy belongs to the weights, whichever runtime and precision later run them.
    metrics = evaluate_weights(members, source=source, data_path=data_path, batch_size=batch_size, device=device,
                               precision="fp32", bad_images=bad_images,
                               bad_image_fraction=bad_image_fraction, model_name=model_name,
                               ground_truth=ground_truth, progress=progress, split=split, keep_logits=True)
    logits, targets = metrics["logits"], metrics["targets"]
    recorded_source = source or (description.data or {}).get("source") or "imagenet"
    chosen = evaluation_split(description, recorded_source, data_path, split)
    decision = fit_decision(logits, targets, multilabel=description.multilabel, rule=rule, per_class=per_class,
                            split="validation" if chosen == "val" else "calibration")
    calibrated = calibrated_logits(logits, decision)

    def scores(scaled) -> dict[str, Any]:
        probabilities = scaled.sigmoid() if description.multilabel else scaled.softmax(1)
        bins = calibration_bins(probabilities, targets, multilabel=description.multilabel)
        return {"bins": bins, "ece": bins.expected_calibration_error(),
                "nll": negative_log_likelihood(scaled, targets, multilabel=description.multilabel)}

    before, after = scores(logits), scores(calibrated)
    if opened is not None:
        listed = EnsembleFile.read(members[0]) if len(members) == 1 else EnsembleFile(tuple(map(str, members)),
                                                                                      (1.0,) * len(members))
        written = dataclasses.replace(listed, decision=decision).write(out)
    else:
        if description.video_decision is not None:  # fitted on the probabilities this refit changes
            log.warning("the weights' %s was fitted under their old frame policy: dropped; fit it again with "
                        "`xception calibrate --videos`", description.video_decision.reason())
        written = save_weights(session.model, out, metadata=dataclasses.replace(
            description, decision=decision, video_decision=None).to_metadata())
    reliability = save_reliability_diagram(
        out.with_name(out.stem + ".reliability.png"), {"raw": before.pop("bins"), "calibrated": after.pop("bins")},
        title=f"{out.stem if opened else Path(str(members[0])).name}: {decision.reason()}")
    return Calibrated(written, decision, reliability, before, after)


def calibrate_videos(weights: str, videos: str | os.PathLike, *, out: str | os.PathLike, rule: str,
                     sampling: Sampling, crop: Crop, face: FaceChoice, aggregate: Aggregate, tta: TTA = "none",
                     workers: int = 1, device: str | None = None, model_name: str | None = None,
                     progress: bool = False) -> tuple[Path, VideoDecision, dict[str, Any]]:
    """Fit a two-class detector's video threshold (`rule` on the `aggregate` of each labelled video's
    frame scores, the videos of `videos`/<class>/ read as `xception eval --videos` reads them) and
    write the weights with it to `out`. Returns the file, the policy and the evaluation it was
    fitted on. Refuses fewer than `MIN_IMAGES` videos with a verdict, and one class."""
    import torch

    from xception.eval.video import evaluate_videos
    from xception.inference.session import InferenceSession
    from xception.inference.video import BATCH_SIZE
    from xception.metrics.thresholds import choose_threshold
    from xception.models.trained import save_trained
    from xception.tasks.decision import MIN_IMAGES, DecisionError

    out = Path(out)
    _refuse_to_overwrite(out, [weights])
    # fp32: the threshold belongs to the weights, whichever runtime and precision later run them.
    session = InferenceSession.open(weights, model_name=model_name, device=device, precision="fp32",
                                    workload="throughput", batch_size=BATCH_SIZE)
    metrics = evaluate_videos(session, videos, sampling=sampling, crop=crop, face=face, aggregate=aggregate,
                              tta=tta, workers=workers, progress=progress, keep_scores=True)
    scores, targets = metrics.pop("video_scores"), metrics.pop("video_targets")
    if len(scores) < MIN_IMAGES:
        raise DecisionError(f"a video threshold is fitted on at least {MIN_IMAGES} videos with a verdict; {videos} "
                            f"gave {len(scores)}")
    if len(set(targets)) < 2:
        raise DecisionError(f"the videos of {videos} with a verdict are of one class only: a threshold needs both")
    threshold = choose_threshold(torch.tensor(scores, dtype=torch.float64), torch.tensor(targets), rule)
    policy = VideoDecision(aggregate=aggregate, threshold=threshold, rule=rule, split_size=len(scores))
    description = dataclasses.replace(session.description, video_decision=policy)
    return save_trained(out, session.model, description), policy, metrics


def _refuse_to_overwrite(out: Path, inputs: Sequence[str | os.PathLike]) -> None:
    """Calibration writes a new file: `out` must be none of `inputs`."""
    if any(out.exists() and Path(i).exists() and out.resolve() == Path(i).resolve() for i in inputs):
        raise UserError(f"--out {out} is the input file; calibrate writes a new file and never over its input")
