"""Config values that come from outside (`--set key=value`, a config file, a checkpoint), in one place:

- `parse_assignment`: the one `--set` grammar, "key=value" with the value as JSON when it parses
  (`0.1`, `true`, `null`, `[4096, 4096]`, lists becoming tuples), else the string itself;
- `with_overrides`: the one resolver of "a named frozen config + overrides", used by the models,
  the recipes, the experiment scales and the transfer study, and `from_values`, its twin for a
  config given whole (the training config and its data part, from a file or a checkpoint): unknown fields
  fail listing the valid ones, a wrong type fails naming the field, the value and the type it needs
  (instead of a `'<=' not supported between 'str' and 'int'` deep inside the program), and
  plain values become the config's types (tuples, nested dataclasses).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, Literal, Union

from xception.errors import UnknownFieldError, UserError


class FieldTypeError(UserError, TypeError):
    """A config value of the wrong type."""


def parse_value(text: str) -> Any:
    """JSON when it parses (numbers, booleans, null, lists become tuples), else the string itself."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    return tuple(value) if isinstance(value, list) else value


def parse_assignment(assignment: str) -> tuple[str, Any]:
    """"key=value" -> (key, `parse_value(value)`): the grammar of every `--set`."""
    key, sep, text = assignment.partition("=")
    if not sep or not key:
        raise UserError(f"--set expects key=value (e.g. --set epochs=2), got {assignment!r}")
    return key, parse_value(text)


def with_overrides(base: Any, overrides: dict[str, Any], *, what: str, where: str = "",
                   names: dict[str, Any] | None = None) -> Any:
    """The frozen dataclass `base` with `overrides` replacing its fields (see the module docstring).
    `what` names the config in errors ("recipe", "model 'xception'"); `where` prefixes field names
    ("recipe."); `names` resolves annotations that the class's module imports for type checking only."""
    return dataclasses.replace(base, **_checked(type(base), overrides, what=what, where=where, names=names))


def from_values(cls: type, values: dict[str, Any], *, what: str, where: str = "",
                names: dict[str, Any] | None = None) -> Any:
    """The dataclass `cls` built from plain `values`, checked as `with_overrides` checks them."""
    return cls(**_checked(cls, values, what=what, where=where, names=names))


def _checked(cls: type, values: dict[str, Any], *, what: str, where: str, names: dict[str, Any] | None) -> dict:
    valid = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(values) - valid)
    if unknown:
        raise UnknownFieldError(f"unknown {what} field(s) {unknown}; valid: {', '.join(sorted(valid))}")
    check_field_types(cls, values, where=where, names=names)
    hints = typing.get_type_hints(cls, localns=names)
    return {key: from_plain(hints[key], value, names=names) for key, value in values.items()}


def check_field_types(cls: type, values: dict[str, Any], *, where: str, names: dict[str, Any] | None = None) -> None:
    """Raise FieldTypeError for the first value in `values` that does not fit its field of the
    dataclass `cls`; names unknown to `cls` are left to the caller. `names` resolves annotations
    that the class's module only imports for type checking."""
    hints = typing.get_type_hints(cls, localns=names)
    fields = {field.name for field in dataclasses.fields(cls)}
    for name, value in values.items():
        if name in fields and not matches(value, hints[name]):
            raise FieldTypeError(f"{where}{name}={value!r} is not {describe(hints[name])}; values are JSON: "
                                 "3, 0.1, true, null, [1, 2] (a string needs no quotes)")


def matches(value: Any, annotation: Any) -> bool:
    """Whether `value` (plain data: JSON values, tuples for lists) fits `annotation`."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return True
    if origin in (Union, types.UnionType):
        return any(matches(value, arg) for arg in args)
    if origin is Literal:
        return value in args
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin is tuple or annotation is tuple:
        if not isinstance(value, (tuple, list)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(matches(v, args[0]) for v in value)
        return not args or (len(args) == len(value) and all(map(matches, value, args)))
    if origin is dict or annotation is dict:
        return isinstance(value, dict)
    if dataclasses.is_dataclass(annotation):
        return isinstance(value, (annotation, dict))
    return True  # an annotation this checker does not know: the field's own checks decide


def describe(annotation: Any) -> str:
    """`annotation` in words: "a number or null", "one of 'fp32', 'bf16'"."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        return " or ".join(describe(arg) for arg in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(arg) for arg in args)
    words = {type(None): "null", bool: "true or false", int: "an integer", float: "a number", str: "a string",
             dict: "a table (a JSON object)"}
    if annotation in words or origin in words:
        return words.get(annotation) or words[origin]
    if origin is tuple or annotation is tuple:
        return "a list" + (f" of {describe(args[0]).removeprefix('a ').removeprefix('an ')}s"
                           if len(args) == 2 and args[1] is Ellipsis else "")
    return getattr(annotation, "__name__", str(annotation))


def from_plain(annotation: Any, value: Any, *, names: dict[str, Any] | None = None) -> Any:
    """`value` as JSON gave it back (lists, objects) rebuilt as `annotation` asks: a dataclass from
    an object (fields it does not know are left out), a tuple from a list, recursively. The inverse
    of `json.loads(json.dumps(dataclasses.asdict(x)))` for this project's frozen configs."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if value is None:
        return None
    if origin in (Union, types.UnionType):
        for arg in args:
            if arg is not type(None) and matches(value, arg):
                return from_plain(arg, value, names=names)
        return value
    if dataclasses.is_dataclass(annotation) and isinstance(value, dict):
        hints = typing.get_type_hints(annotation, localns=names)
        known = {field.name for field in dataclasses.fields(annotation)}
        return annotation(**{k: from_plain(hints[k], v, names=names) for k, v in value.items() if k in known})
    if (origin is tuple or annotation is tuple) and isinstance(value, (list, tuple)):
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_plain(args[0], v, names=names) for v in value)
        if args and len(args) == len(value):
            return tuple(from_plain(arg, v, names=names) for arg, v in zip(args, value, strict=True))
        return tuple(value)
    return value
