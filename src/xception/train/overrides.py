"""A training config from layers: a file (JSON or TOML), then command-line `key=value` overrides.

Keys are `TrainConfig` fields (`epochs`, `batch_size`), or dotted into the nested parts:
`data.<DataConfig field>`, `model.<model config field>` (into `model_overrides`) and
`recipe.<Recipe field>` (into `recipe_overrides`). Each "key=value" is read by the one `--set`
grammar, `xception.config_fields.parse_assignment`.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, as its PyPI backport (a dependency on Python 3.10)
    import tomli as tomllib

from xception.config_fields import parse_assignment
from xception.errors import UnknownNameError, UserError
from xception.train.config import TrainConfig

_NESTED = {"model": "model_overrides", "recipe": "recipe_overrides", "data": "data"}


def load_config_file(path: str | Path) -> dict[str, Any]:
    """The dict in a .json or .toml file (TrainConfig fields, `data` a table of DataConfig fields)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            return tomllib.loads(text)
        if path.suffix == ".json":
            return json.loads(text)
    except ValueError as error:  # tomllib.TOMLDecodeError, json.JSONDecodeError
        raise UserError(f"config file {path} is not valid {path.suffix[1:].upper()}: {error}") from None
    raise ValueError(f"config file {path} must end in .json or .toml")


def apply_overrides(values: dict[str, Any], assignments: list[str]) -> dict[str, Any]:
    """`values` (a `TrainConfig.to_dict()`-shaped dict) with each "key=value" applied, in order."""
    values = {**values, **{k: dict(values.get(k) or {}) for k in _NESTED.values()}}
    top = {f.name for f in dataclasses.fields(TrainConfig)}
    for assignment in assignments:
        key, value = parse_assignment(assignment)
        head, dot, rest = key.partition(".")
        if dot:
            if head not in _NESTED:
                raise UnknownNameError(f"unknown --set group {head!r} in {key!r}; valid: {', '.join(_NESTED)} "
                               "(e.g. recipe.lr=0.01, model.width=0.5, data.crop_padding=4)")
            values[_NESTED[head]][rest] = value
        elif key in top and key not in _NESTED.values():
            values[key] = value
        else:
            raise UnknownNameError(f"unknown --set key {key!r}; valid: {', '.join(sorted(top - set(_NESTED.values())))} "
                           "or data.FIELD, model.FIELD, recipe.FIELD")
    return values
