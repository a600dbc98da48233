"""Training: the paper's recipes (sections 4.2-4.3) from one CPU to many GPUs.

`fit(TrainConfig(...)) -> TrainResult` is the whole API; `RECIPES` lists the recipes.
"""

from xception.train.config import EvalRecord, TrainConfig, TrainResult
from xception.train.fit import fit
from xception.train.recipes import RECIPES, Recipe, get_recipe, list_recipes

__all__ = ["RECIPES", "EvalRecord", "Recipe", "TrainConfig", "TrainResult", "fit", "get_recipe", "list_recipes"]
