"""The errors a user causes: a bad option, value or file. The command line prints their message as one
line (`xception CMD: error: ...`) and the traceback of everything else, which is a bug.

Each message names the thing that is wrong and what to do about it. The subclasses also derive from
the built-in error a library caller would expect (KeyError for an unknown name, TypeError for an
unknown field), so `except KeyError` keeps working.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from types import TracebackType


class UserError(Exception):
    """A mistake in what the user gave (an option, a value, a file), not in the program."""


class UnknownNameError(UserError, KeyError):
    """An unknown model, recipe, experiment, --set key...: the message lists the valid ones."""

    def __str__(self) -> str:  # KeyError's str() would quote the whole message
        return str(self.args[0]) if self.args else ""


class UnknownFieldError(UserError, TypeError):
    """Unknown fields of a config or an override: the message lists the valid ones."""


class DiskFullError(UserError):
    """No space left to write a file: names the file, the bytes it needs and the bytes free."""

    def __init__(self, path: str | os.PathLike, *, needed: int | None) -> None:
        path = Path(path)
        free = shutil.disk_usage(_existing_parent(path)).free
        need = f"it needs about {_megabytes(needed)} and " if needed else ""
        super().__init__(f"no space left on the device to write {path}: {need}{_megabytes(free)} are free "
                         "there; free some space or write elsewhere (--out)")
        self.path, self.needed, self.free = path, needed, free


def raise_if_disk_full(error: BaseException, path: str | os.PathLike, *, needed: int | None) -> None:
    """Raise `DiskFullError` for `path` (from `error`) when `error` is a full disk; else return."""
    if is_disk_full(error):
        raise DiskFullError(path, needed=needed) from error


def is_disk_full(error: BaseException) -> bool:
    """Whether `error`, or an error it was raised from or during, is ENOSPC (torch.save wraps it in a
    RuntimeError from C++ whose own message only says "unexpected pos")."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return True
        if "No space left on device" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def _existing_parent(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def user_message(error: BaseException) -> str | None:
    """The one line to print for an error the user caused, or None for a bug (it keeps its traceback).

    User errors: a `UserError`; an OSError naming a file (missing, permission denied, disk full); a
    ValueError or FileNotFoundError raised by this project's own checks, which predate `UserError`
    (one raised inside torch, numpy or PIL is a bug of ours in how we called them).
    """
    if isinstance(error, UserError):
        return str(error)
    if is_disk_full(error):
        return "no space left on the device while writing (-v shows where); free some space or write elsewhere (--out)"
    if isinstance(error, OSError) and error.filename is not None:
        return str(error)
    if isinstance(error, (ValueError, FileNotFoundError)) and _raised_by_this_project(error.__traceback__):
        return str(error)
    return None


def _raised_by_this_project(traceback: TracebackType | None) -> bool:
    if traceback is None:
        return False
    while traceback.tb_next is not None:
        traceback = traceback.tb_next
    return traceback.tb_frame.f_globals.get("__name__", "").startswith("xception.")
