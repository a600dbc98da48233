"""Any supported weight file (or published weights by name) -> this project's format (`xception convert`).

The file is opened as every reader opens weights (`xception.models.trained.open_weights`): a
foreign file gets the class names and preparation of the published weights whose head it has;
our own files keep theirs (not when `num_classes` gives them another head).
"""

from __future__ import annotations

import os

from xception.description import WeightsDescription
from xception.models.trained import Source, open_weights, read_description, save_trained


def convert_weights(
    source: Source,
    destination: str | os.PathLike,
    *,
    model_name: str,
    num_classes: int | None = None,
    in_channels: int = 3,
) -> WeightsDescription:
    """Read `source` into a fresh `model_name`, check it fits, write it to `destination`; the
    description written."""
    model, _, description = open_weights(source, model_name=model_name, num_classes=num_classes,
                                         in_channels=in_channels)
    return read_description(save_trained(destination, model, description))
