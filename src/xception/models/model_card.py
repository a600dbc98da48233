"""The model card of a weight file: what it is, what it was trained on, how well it does, how to use it.

Built from the weights' own description alone (`WeightsDescription`: the model, the training data,
the recipe, the validation metrics with their split, the decision policy, the preparation), so that a
card can never describe other weights than the ones beside it. The YAML metadata is
`huggingface_hub.ModelCardData` (library, tags, license, base model, datasets, metrics, and the
metrics' values as a model index), which the Hub and `ModelCard.load` read.
"""

from __future__ import annotations

from pathlib import PurePath

from xception.description import WeightsDescription
from xception.models.registry import get_entry
from xception.models.weights.timm_names import TimmCounterpart

PAPER = "https://arxiv.org/abs/1610.02357"
# Datasets the Hub knows, by this project's data source.
_HUB_DATASETS = {"fashion_mnist": "zalando-datasets/fashion_mnist"}
# Metric names as the Hub's model index spells them, with their words.
_METRICS = {"top1": ("accuracy", "top-1 accuracy"), "top5": ("top_5_accuracy", "top-5 accuracy"),
            "roc_auc": ("roc_auc", "ROC-AUC"), "eer": ("eer", "equal error rate"), "mAP": ("map", "mean average precision"),
            "mean_iou": ("mean_iou", "mean IoU"), "pixel_accuracy": ("pixel_accuracy", "pixel accuracy"),
            "ece": ("ece", "expected calibration error (15 bins)")}


def model_card(description: WeightsDescription, *, timm: TimmCounterpart, repo_id: str, license: str) -> str:
    """The card (README.md of a Hub folder) as text: YAML metadata, then the sections."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    pipeline = "image-segmentation" if description.task == "segmentation" else "image-classification"
    metrics = _recorded_metrics(description)
    source = (description.data or {}).get("source")
    dataset = _HUB_DATASETS.get(source or "", source or "unknown")
    base = (description.provenance.get("init") or {}).get("weights", "")
    data = ModelCardData(
        library_name="timm" if timm.architecture else "xception", license=license, pipeline_tag=pipeline,
        tags=["xception", pipeline, *(["timm"] if timm.architecture else [])],
        base_model=base.removeprefix("hf-hub:").partition("@")[0] if base.startswith("hf-hub:") else None,
        datasets=[_HUB_DATASETS[source]] if source in _HUB_DATASETS else None,
        metrics=[_METRICS[name][0] for name in metrics] or None,
        model_name=repo_id.rpartition("/")[2],
        eval_results=[EvalResult(task_type=pipeline, dataset_type=dataset, dataset_name=dataset,
                                 dataset_split="validation", metric_type=_METRICS[name][0],
                                 metric_name=_METRICS[name][1], metric_value=round(value, 6))
                      for name, value in metrics.items()] or None,
    )
    sections = [_title(description, repo_id), _training_data(description), _training(description),
                _evaluation(description, metrics), _preparation(description), _use_and_limits(description),
                _how_to_load(description, timm, repo_id)]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n\n".join(sections) + "\n").content


def _recorded_metrics(description: WeightsDescription) -> dict[str, float]:
    recorded = description.provenance.get("metrics") or {}
    return {name: float(recorded[name]) for name in _METRICS if isinstance(recorded.get(name), int | float)}


def _title(description: WeightsDescription, repo_id: str) -> str:
    entry = get_entry(description.model_name)
    classes = description.class_names or ()
    what = (f"segments images into {description.num_classes} classes" if description.task == "segmentation"
            else f"classifies {'each of ' if description.multilabel else ''}{description.image_size} px images "
                 f"into {len(classes) or description.num_classes} classes" +
                 (" (multi-label: every class present)" if description.multilabel else ""))
    return (f"# {repo_id.rpartition('/')[2]}\n\n`{description.model_name}` ({entry.description}) that {what}. "
            f"Xception is the network of Chollet, \"Xception: Deep Learning with Depthwise Separable "
            f"Convolutions\" (CVPR 2017, [{PAPER}]({PAPER})); these weights were written by the "
            f"`xception` library.")


def _training_data(description: WeightsDescription) -> str:
    data = description.data
    if not data:
        return "## Training data\n\nNot recorded: these weights were converted from another format."
    lines = [f"- source: `{data.get('source')}`" +
             (f", folder `{PurePath(data['path']).name}`" if data.get("path") else "")]
    sizes = description.provenance.get("split_sizes") or {}
    if sizes:
        lines.append(f"- images: {sizes.get('train')} for training, {sizes.get('val')} for validation" +
                     (f" (a {data['val_split']:.0%} validation split drawn with seed {data.get('seed')})"
                      if data.get("val_split") else ""))
    if description.class_names:
        lines.append(f"- classes ({len(description.class_names)}): " +
                     ", ".join(f"`{name}`" for name in description.class_names))
    return "## Training data\n\n" + "\n".join(lines)


def _training(description: WeightsDescription) -> str:
    provenance = description.provenance
    lines = [f"- recipe: `{provenance['recipe']}`" if provenance.get("recipe") else "- recipe: not recorded"]
    if provenance.get("step") is not None:
        lines.append(f"- steps: {provenance['step']}")
    init = provenance.get("init")
    if init:
        lines.append(f"- fine-tuned from `{init.get('weights')}` (sha256 `{str(init.get('sha256'))[:16]}...`)")
    if provenance.get("git_commit"):
        lines.append(f"- code: commit `{provenance['git_commit']}`")
    return "## Training\n\n" + "\n".join(lines)


def _evaluation(description: WeightsDescription, metrics: dict[str, float]) -> str:
    sizes = description.provenance.get("split_sizes") or {}
    split = f"the validation split ({sizes['val']} images)" if sizes.get("val") else "the validation split"
    if not metrics:
        return "## Evaluation\n\nNo metrics recorded."
    rows = "\n".join(f"| {_METRICS[name][1]} | {value:.4f} |" for name, value in metrics.items())
    text = f"## Evaluation\n\nOn {split}, at the end of training:\n\n| metric | value |\n|---|---:|\n{rows}"
    decision = description.decision
    if decision is not None:
        text += (f"\n\nDecision policy stored with the weights (applied by `xception predict`, `eval` and "
                 f"`serve`): temperature {decision.temperature:.3f}" +
                 (f"; {decision.reason()}" if decision.threshold is not None else
                  f", fitted on {decision.split_size} {decision.split} images") + ".")
    if description.video_decision is not None:
        text += (f"\n\nVideos (`xception predict VIDEO --aggregate {description.video_decision.aggregate}`) are "
                 f"decided at the {description.video_decision.reason()}.")
    return text


def _preparation(description: WeightsDescription) -> str:
    p = description.preprocessing
    if p is None:
        return "## Preprocessing\n\nNot recorded."
    resize = (f"resize the shorter side to floor({p.image_size} / {p.crop_fraction:g}) ({p.interpolation}), then "
              f"crop the centre {p.image_size} x {p.image_size}" if p.resize == "crop" else
              f"resize the whole image to {p.image_size} x {p.image_size} ({p.interpolation}), no crop")
    channels = "grayscale" if description.in_channels == 1 else "RGB"
    return (f"## Preprocessing\n\n{channels}; {resize}; values x / 127.5 - 1, in [{p.value_range[0]:g}, "
            f"{p.value_range[1]:g}] (timm: mean 0.5, std 0.5 of [0, 1]).")


def _use_and_limits(description: WeightsDescription) -> str:
    names = description.class_names or ()
    return ("## Intended use and limits\n\n"
            f"For images like its training data{', to tell ' + ', '.join(names[:5]) + ('...' if len(names) > 5 else '') if names else ''}. "
            "It was measured only on the validation split above: on other cameras, sources or populations "
            "its accuracy and its calibration may be lower, so measure it on your own labelled images "
            "(`xception eval`) before you rely on it. It knows only these classes: every image gets one "
            "of them, whatever it shows.")


def _how_to_load(description: WeightsDescription, timm: TimmCounterpart, repo_id: str) -> str:
    text = ("## How to use\n\nWith the `xception` library:\n\n"
            f"```bash\nxception predict --weights hf-hub:{repo_id} photo.jpg\n```\n\n"
            "```python\nfrom xception.models.trained import open_weights\n\n"
            f"model, spec, description = open_weights(\"hf-hub:{repo_id}\")\n```")
    if timm.architecture is None:
        return text + f"\n\ntimm cannot load these weights: {timm.reason}."
    note = ("It computes exactly as this project does." if timm.exact else f"Note: {timm.reason}.")
    return (text + "\n\nWith [timm](https://github.com/huggingface/pytorch-image-models):\n\n"
            f"```python\nimport timm\n\nmodel = timm.create_model(\"hf-hub:{repo_id}\", pretrained=True).eval()\n"
            "config = timm.data.resolve_data_config({}, model=model)\n"
            "transform = timm.data.create_transform(**config)\n```\n\n" + note)

