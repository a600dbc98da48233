"""A weight file as a folder the Hugging Face Hub and timm understand (`xception export --format hub`).

- `model.safetensors`: the tensors, under timm's names where timm has the architecture
  (`xception.models.weights.timm_names`), else under this project's; in both cases this project's
  metadata in the header, so `open_weights` reads the folder's file as one of its own.
- `config.json`: timm's keys (`architecture`, `num_classes`, `label_names`, `pretrained_cfg` with
  input size, interpolation, crop_pct, crop_mode, mean and std, `model_args`), which
  `timm.create_model("hf-hub:...")` reads, and this project's description under "xception".
- `README.md`: the model card (`xception.models.model_card`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from xception.atomic_write import write_bytes_atomic, write_text_atomic
from xception.description import WeightsDescription
from xception.models.model_card import model_card
from xception.models.spec import ModelSpec
from xception.models.trained import Source, open_weights
from xception.models.weights.hub import WEIGHTS_FILE
from xception.models.weights.native import METADATA_KEY, model_metadata
from xception.models.weights.timm_names import TimmCounterpart, timm_counterpart, timm_state_dict

CONFIG_FILE = "config.json"
CARD_FILE = "README.md"


@dataclass(frozen=True)
class HubFolder:
    """What `write_hub_folder` wrote, and what timm can make of it."""

    directory: Path
    files: tuple[Path, ...]
    timm: TimmCounterpart


def write_hub_folder(source: Source, directory: str | os.PathLike, *, repo_id: str = "ORG/NAME",
                     license: str = "other") -> HubFolder:
    """Write `source` (any weights `open_weights` reads) as a Hub folder in `directory` (see the
    module docstring). `repo_id` is the id the card's examples load it by."""
    from safetensors.torch import save

    model, spec, description = open_weights(source)
    timm = timm_counterpart(spec)
    if timm.architecture is not None:
        tensors = timm_state_dict(model, spec, timm.architecture)
    else:
        tensors = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    metadata = json.dumps({**model_metadata(model), **description.to_metadata()})
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    files = (write_bytes_atomic(directory / WEIGHTS_FILE, save(tensors, metadata={METADATA_KEY: metadata})),
             write_text_atomic(directory / CONFIG_FILE, json.dumps(hub_config(spec, description, timm), indent=2) + "\n"),
             write_text_atomic(directory / CARD_FILE, model_card(description, timm=timm, repo_id=repo_id,
                                                                 license=license)))
    return HubFolder(directory, files, timm)


def hub_config(spec: ModelSpec, description: WeightsDescription, timm: TimmCounterpart) -> dict:
    """config.json: timm's pretrained_cfg keys, and this project's spec and description."""
    p = description.preprocessing
    channels = spec.in_channels
    pretrained_cfg = {"input_size": [channels, description.image_size, description.image_size],
                      "num_classes": spec.num_classes, "mean": [0.5] * channels, "std": [0.5] * channels}
    if p is not None:
        pretrained_cfg.update(interpolation=p.interpolation, crop_pct=p.crop_fraction,
                              crop_mode="center" if p.resize == "crop" else "squash")
    config = {"num_classes": spec.num_classes, "pretrained_cfg": pretrained_cfg, "model_args": {"in_chans": channels}}
    if timm.architecture is not None:
        config = {"architecture": timm.architecture, **config}
    if description.class_names is not None:
        config["label_names"] = list(description.class_names)
    return {**config, "xception": {"model_name": spec.name, "config": spec.config_plain(),
                                   "timm": {"architecture": timm.architecture, "exact": timm.exact,
                                            "reason": timm.reason}}}
