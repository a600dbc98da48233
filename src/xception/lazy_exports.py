"""A package's public names imported on first use (PEP 562), not when the package is imported.

Python runs a package's `__init__` before any module inside it, so a package that imports its heavy
modules eagerly makes even its lightest module heavy: `xception --help` reads a few constants
(`xception.data.config.SOURCES`, `xception.experiments.registry.NAMES`) to build its parser, and
without this it imported torch, torchvision and the experiments to get them.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, sources: dict[str, str]) -> Callable[[str], Any]:
    """A module-level `__getattr__` for `package`: `sources` maps each public name to the module that
    defines it; the first access imports that module and keeps the name in the package."""

    def __getattr__(name: str) -> Any:
        if name not in sources:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(sources[name]), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
