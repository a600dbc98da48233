"""A training config from layers: a file (JSON or TOML), then command-line `key=value` overrides.

Keys are `TrainConfig` fields (`epochs`, `batch_size`), or dotted into the nested parts:
`data.<DataConfig field>`, `model.<model config field>` (into `model_overrides`) and
`recipe.<Recipe field>` (into `recipe_overrides`). Values are parsed as JSON when they can be
(`0.1`, `true`, `null`, `[4096, 4096]`), else taken as strings.
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


def parse_value(text: str) -> Any:
    """JSON when it parses (numbers, booleans, null, lists become tuples), else the string itself."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    return tuple(value) if isinstance(value, list) else value


def apply_overrides(values: dict[str, Any], assignments: list[str]) -> dict[str, Any]:
    """`values` (a `TrainConfig.to_dict()`-shaped dict) with each "key=value" applied, in order."""
    values = {**values, **{k: dict(values.get(k) or {}) for k in _NESTED.values()}}
    top = {f.name for f in dataclasses.fields(TrainConfig)}
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {assignment!r}")
        head, dot, rest = key.partition(".")
        if dot:
            if head not in _NESTED:
                raise UnknownNameError(f"unknown --set group {head!r} in {key!r}; valid: {', '.join(_NESTED)} "
                               "(e.g. recipe.lr=0.01, model.width=0.5, data.crop_padding=4)")
            values[_NESTED[head]][rest] = parse_value(text)
        elif key in top and key not in _NESTED.values():
            values[key] = parse_value(text)
        else:
            raise UnknownNameError(f"unknown --set key {key!r}; valid: {', '.join(sorted(top - set(_NESTED.values())))} "
                           "or data.FIELD, model.FIELD, recipe.FIELD")
    return values
