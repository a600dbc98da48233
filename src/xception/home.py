"""The folder where xception keeps what it downloads, compiles or measures once per machine:
`$XCEPTION_HOME`, else `~/.cache/xception` (weights/, compiled/, runtime-timings/)."""

from __future__ import annotations

import os
from pathlib import Path

HOME_VARIABLE = "XCEPTION_HOME"


def xception_home() -> Path:
    home = os.environ.get(HOME_VARIABLE)
    return Path(home).expanduser() if home else Path.home() / ".cache" / "xception"
