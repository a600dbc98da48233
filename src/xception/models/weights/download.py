"""Fetching a registered weight file into the cache, once, checked.

The cache is `$XCEPTION_HOME/weights/` (default `~/.cache/xception/weights/`). A download streams into
a temporary file in that folder (with a progress bar on a terminal), is checked against the entry's
checksum, and only then is renamed into place (atomic on one file system), so the cache never holds a
partial or wrong download; a failed download leaves nothing behind. A cached file is used without
any network access, after checking it again (it may have been put there by hand).
`$XCEPTION_WEIGHTS_URL` replaces the publishers' URLs by `<that base>/<file name>` (a mirror, a
local server).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from xception.home import HOME_VARIABLE, xception_home
from xception.models.weights.hub import hub_weights_file, is_hub_id
from xception.models.weights.registry import Checksum, WeightsEntry, find_weights, list_weights

log = logging.getLogger(__name__)

URL_VARIABLE = "XCEPTION_WEIGHTS_URL"
_CHUNK = 1 << 20
_TIMEOUT_S = 30


class ChecksumError(ValueError):
    """A downloaded file whose checksum is not the published one, or that stopped short (it was deleted)."""


class WeightsUnavailableError(FileNotFoundError):
    """A registered weight file that is not in the cache and that no URL delivered."""


def weights_home() -> Path:
    """The folder that holds downloaded weight files."""
    return xception_home() / "weights"


def cached_path(entry: WeightsEntry) -> Path:
    """Where `entry`'s file is (or will be) in the cache."""
    return weights_home() / entry.file_name


def entry_urls(entry: WeightsEntry) -> tuple[str, ...]:
    """The URLs to try, in order: `$XCEPTION_WEIGHTS_URL/<file name>` when set, else the publishers'."""
    base = os.environ.get(URL_VARIABLE)
    return (f"{base.rstrip('/')}/{entry.file_name}",) if base else entry.urls


def fetch_weights(entry: WeightsEntry, *, progress: bool = True) -> Path:
    """The path of `entry`'s file in the cache, downloaded and checked first if it is not there.

    A cached file is checked again (a fraction of a second; a file put there by hand is checked too).
    Tries each URL in turn while the network fails; raises WeightsUnavailableError naming the URLs and the
    exact path to put the file at when none answers, and ChecksumError when a file arrives but is
    not the published one.
    """
    path = cached_path(entry)
    if path.is_file():
        _check_cached(path, entry.checksum)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    for url in entry_urls(entry):
        try:
            _download_checked(url, path, entry.checksum, progress=progress)
            return path
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            failures.append(f"{url}: {getattr(error, 'reason', error)}")
    raise WeightsUnavailableError(
        f"cannot download the weights {entry.key!r} ({'; '.join(failures)}). Without network, download "
        f"{entry.urls[0]} elsewhere and put it at {path} (set ${HOME_VARIABLE} to use another cache folder)"
    )


def _check_cached(path: Path, checksum: Checksum) -> None:
    digest = hashlib.new(checksum.algorithm)
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    if not digest.hexdigest().startswith(checksum.digest):
        raise ChecksumError(
            f"the cached {path} has {checksum.algorithm} {digest.hexdigest()}, not the published {checksum.digest} "
            f"({checksum.source}); delete it to download it again, or put the right file there"
        )


def _download_checked(url: str, path: Path, checksum: Checksum, *, progress: bool) -> None:
    """Stream `url` into a temporary file beside `path`, check it, rename it to `path`; or delete it."""
    digest = hashlib.new(checksum.algorithm)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response:
            expected_size = int(response.headers.get("Content-Length") or 0) or None
            size = f" ({expected_size / 1e6:.1f} MB)" if expected_size else ""
            log.info("downloading %s%s from %s", path.name, size, url)  # what a log file gets instead of the bar
            # A bar only on a terminal: into a log file tqdm writes one endless line of carriage returns.
            with tqdm(total=expected_size, unit="B", unit_scale=True, desc=path.name, file=sys.stderr,
                      disable=not (progress and sys.stderr.isatty())) as bar:
                try:
                    while chunk := response.read(_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        bar.update(len(chunk))
                except http.client.IncompleteRead as error:
                    raise ChecksumError(
                        f"the download from {url} stopped after {bar.n + len(error.partial)} of {expected_size} "
                        f"bytes, so it cannot have the published {checksum.algorithm} {checksum.digest}; it was "
                        "deleted. Try again, or put the right file at " + str(path)
                    ) from None
        actual = digest.hexdigest()
        if not actual.startswith(checksum.digest):
            kind = "prefix " if len(checksum.digest) < len(actual) else ""
            raise ChecksumError(
                f"the file downloaded from {url} has {checksum.algorithm} {actual}, not the published "
                f"{kind}{checksum.digest} ({checksum.source}); it was deleted. A truncated download or a "
                "wrong mirror: try again, or put the right file at " + str(path)
            )
        os.replace(temporary, path)
        log.info("downloaded %s: %s checked, cached as %s", path.name, checksum.algorithm, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def registered_weights(model_name: str, weights: str | os.PathLike | WeightsEntry) -> WeightsEntry | None:
    """The entry `weights` names for `model_name` (the object itself, "imagenet", "xception.imagenet"), or
    None for a path. A string that is neither a file nor a registered name fails listing the names."""
    entry = weights if isinstance(weights, WeightsEntry) else None
    if entry is None and isinstance(weights, str):
        entry = find_weights(model_name, weights)
        if entry is None and _looks_like_a_name(weights):
            raise ValueError(
                f"{weights!r} is neither a weight file nor registered weights of {model_name!r} "
                f"(registered: {', '.join(list_weights(model_name)) or 'none'}); give a path or one of those"
            )
    if entry is not None and entry.model_name != model_name:
        raise ValueError(f"the weights {entry.key!r} are for {entry.model_name!r}, not {model_name!r}")
    return entry


def weights_file(model_name: str, weights: str | os.PathLike | WeightsEntry) -> str | os.PathLike:
    """The file to load for `create_model(model_name, weights=weights)`: registered weights are fetched
    into the cache, a Hub id (`hf-hub:ORG/NAME[@REVISION]`) through huggingface_hub's; a path is
    returned as it is."""
    if is_hub_id(weights):
        return hub_weights_file(weights)
    entry = registered_weights(model_name, weights)
    return weights if entry is None else fetch_weights(entry)


def _looks_like_a_name(text: str) -> bool:
    return not Path(text).exists() and not Path(text).suffix and os.sep not in text and "/" not in text
