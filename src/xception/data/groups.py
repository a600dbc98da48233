"""Which group (a video, a subject, a scan) each image belongs to, for metrics per group
(`xception.eval.binary_report`): from a pattern on the file name, or from a column of a manifest.

Pattern: a Python regular expression searched in each path; the group is its first capture group.
Frames `videos/000_003/0042.png` group by `r"videos/([^/]+)/"`, and FaceForensics++-style names
`000_003_frame0042.png` by `r"([^/]+)_frame\\d+"`.

Manifest: a CSV file with a header, or JSONL (one object per line), with a `path` column and the
named group column. Its paths are relative to the manifest's folder, or absolute.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path


def groups_from_pattern(paths: Sequence[str], pattern: str) -> list[str]:
    """The first capture group of `re.search(pattern, path)` for each of `paths`; ValueError for a
    pattern without a capture group or a path it does not match (naming the path)."""
    try:
        compiled = re.compile(pattern)
    except re.error as error:
        raise ValueError(f"group pattern {pattern!r} is not a regular expression: {error}") from None
    if compiled.groups < 1:
        raise ValueError(f"group pattern {pattern!r} has no capture group: put the group's part of the name in "
                         r"parentheses, e.g. '([^/]+)_frame\d+'")
    groups = []
    for path in paths:
        match = compiled.search(str(path))
        if match is None or match.group(1) is None:
            raise ValueError(f"group pattern {pattern!r} does not match {path}")
        groups.append(match.group(1))
    return groups


def read_group_column(manifest: str | os.PathLike, column: str) -> dict[str, str]:
    """{absolute normalised path: group} from the `path` and `column` columns of a CSV or JSONL file."""
    manifest = Path(manifest)
    if not manifest.is_file():
        raise FileNotFoundError(f"group manifest {manifest} does not exist")
    if manifest.suffix == ".jsonl":
        rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    elif manifest.suffix == ".csv":
        with open(manifest, newline="") as file:
            rows = list(csv.DictReader(file))
    else:
        raise ValueError(f"group manifest {manifest} must end in .csv or .jsonl")
    mapping = {}
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or "path" not in row or column not in row:
            raise ValueError(f"{manifest}: row {number} has no 'path' and {column!r} columns")
        # The manifest's folder made absolute as the caller's paths are (`groups_from_manifest`), so
        # that a manifest named by a relative path matches them.
        mapping[absolute(row["path"], Path(os.path.abspath(manifest.parent)))] = str(row[column])
    return mapping


def groups_from_manifest(paths: Sequence[str], manifest: str | os.PathLike, column: str) -> list[str]:
    """The `column` value of each of `paths` in `manifest` (see `read_group_column`); ValueError
    naming a path that the manifest does not list."""
    mapping = read_group_column(manifest, column)
    groups = []
    for path in paths:
        group = mapping.get(absolute(path, Path.cwd()))
        if group is None:
            raise ValueError(f"{path} is not listed in the group manifest {manifest}")
        groups.append(group)
    return groups


def absolute(path: str | os.PathLike, base: Path) -> str:
    """`path` joined to `base` when relative, normalised (no symlinks resolved)."""
    return os.path.normpath(os.path.join(base, os.fspath(path)))
