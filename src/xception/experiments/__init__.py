"""The paper's experiments as commands: Tables 1-3, Figures 6-10, section 4.6's VGG-style remark and
section 5's spectrum, each a controlled comparison at equal parameter count with several seeds.

An experiment is data (`definition.Comparison` or `definition.SpeedTable`, one module each); a scale
(`scales`) says how big; `run_experiment` trains every arm with every seed (`comparison`), or times
the networks (`speed_table`), and writes results.json, PNG plots and report.md (`report`).
"""

from xception.lazy_exports import lazy_exports

__all__ = ["NAMES", "SCALES", "Scale", "get_experiment", "get_scale", "run_experiment"]
# Imported on first use: the command line reads `NAMES` (torch-free) for its choices.
__getattr__ = lazy_exports(__name__, {
    "NAMES": "xception.experiments.registry", "get_experiment": "xception.experiments.registry",
    "SCALES": "xception.experiments.scales", "Scale": "xception.experiments.scales",
    "get_scale": "xception.experiments.scales", "run_experiment": "xception.experiments.run"})
