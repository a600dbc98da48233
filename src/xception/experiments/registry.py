"""The paper's experiments by name: one module each, holding one `Comparison` or `SpeedTable`."""

from __future__ import annotations

import importlib

from xception.errors import UnknownNameError
from xception.experiments.definition import Comparison, SpeedTable

# In the paper's order: Table 3, Table 1 / Figure 6, Table 2 / Figures 7-8, Figures 9 and 10,
# section 4.6's VGG-style remark, then section 5's open question.
NAMES: tuple[str, ...] = (
    "table3", "imagenet_profile", "jft_profile", "residual", "mid_activation", "vgg_separable", "spectrum",
)


def get_experiment(name: str) -> Comparison | SpeedTable:
    """The experiment `name`, or a KeyError that lists the valid names."""
    if name not in NAMES:
        raise UnknownNameError(f"unknown experiment {name!r}; valid: {', '.join(NAMES)}")
    return importlib.import_module(f"xception.experiments.{name}").EXPERIMENT
