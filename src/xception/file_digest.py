"""The sha256 of a file, read in blocks (`hashlib.file_digest` is Python 3.11+; this project runs on 3.10)."""

from __future__ import annotations

import hashlib
import os


def file_sha256(path: str | os.PathLike) -> str:
    """The hex sha256 of the bytes of `path`, read 1 MiB at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
