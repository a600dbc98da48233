"""Crash-safe files: every file a run writes goes through `write_atomic`, so a kill at any moment
leaves either the previous file or the new one, never a half-written one.

The bytes go to a temporary file in the same directory (`.NAME.tmp-PID`), are flushed and
fsync'ed, then renamed over the target (rename within a directory is atomic on POSIX) and the
directory is fsync'ed so the rename itself survives a power cut. The temporary file is created
with mode 0666 and the process's umask applied, as `open()` creates files: 0644 under the usual
umask 022, the same mode for weights, checkpoints, JSON and figures. `remove_stale_temporaries`
clears what a killed writer left behind.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from xception.errors import raise_if_disk_full

TEMPORARY_MARK = ".tmp-"


def temporary_path(path: Path) -> Path:
    return path.with_name(f".{path.name}{TEMPORARY_MARK}{os.getpid()}")


def write_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], object], *, needed: int | None = None) -> Path:
    """Create or replace `path` with what `write(file)` writes into a binary file; returns the path.

    A full disk raises `xception.errors.DiskFullError` naming `path` and `needed` (bytes, if known)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        tmp.unlink(missing_ok=True)  # left by an earlier process that had this PID
        descriptor = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(descriptor, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except Exception as error:
        raise_if_disk_full(error, path, needed=needed)
        raise
    finally:
        tmp.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return path


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    return write_atomic(path, lambda file: file.write(data), needed=len(data))


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def save_figure_atomic(figure, path: str | os.PathLike, **savefig) -> Path:
    """`figure.savefig(path)` through `write_atomic` (the format from the suffix)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format=Path(path).suffix.lstrip("."), **savefig)
    return write_bytes_atomic(path, buffer.getvalue())


def remove_stale_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that killed writers left in `directory` and below; returns them.

    Call it only where this process is the directory's one writer (rank 0 of a run at set-up).
    """
    stale = [p for p in Path(directory).rglob(f".*{TEMPORARY_MARK}*") if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale
