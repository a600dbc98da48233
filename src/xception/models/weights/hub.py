"""Weights on the Hugging Face Hub by id: `hf-hub:ORG/NAME[@REVISION]`, as timm and open_clip name them.

The file is fetched by `huggingface_hub` itself, so its cache (`$HF_HOME/hub`, or `HF_HUB_CACHE`),
`HF_HUB_OFFLINE=1`, tokens and mirrors (`HF_ENDPOINT`) behave as they do for every other library;
`@REVISION` pins a branch, tag or commit. A folder that `xception export --format hub` wrote holds
`model.safetensors` (this project's metadata in its header, the tensors in timm's names where timm has
the architecture), which every reader opens as a file of ours.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PREFIX = "hf-hub:"
WEIGHTS_FILE = "model.safetensors"


class HubWeightsUnavailableError(FileNotFoundError):
    """A Hub id whose weights are neither in the cache nor downloadable."""


@dataclass(frozen=True)
class HubId:
    repo_id: str
    revision: str | None

    def __str__(self) -> str:
        return f"{PREFIX}{self.repo_id}" + (f"@{self.revision}" if self.revision else "")


def is_hub_id(source: object) -> bool:
    return isinstance(source, str) and source.startswith(PREFIX)


def parse_hub_id(source: str) -> HubId:
    """"hf-hub:ORG/NAME[@REVISION]" -> HubId; ValueError naming the form for anything else."""
    repo_id, _, revision = source.removeprefix(PREFIX).partition("@")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"{source!r} is not a Hub id: write hf-hub:ORG/NAME or hf-hub:ORG/NAME@REVISION")
    return HubId(repo_id, revision or None)


def hub_weights_file(source: str) -> Path:
    """The local path of the Hub id's model.safetensors, from the cache or downloaded into it."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

    hub_id = parse_hub_id(source)
    try:
        return Path(hf_hub_download(hub_id.repo_id, WEIGHTS_FILE, revision=hub_id.revision))
    except LocalEntryNotFoundError:
        offline = " (HF_HUB_OFFLINE is set)" if constants.HF_HUB_OFFLINE else " and the Hub is unreachable"
        raise HubWeightsUnavailableError(
            f"{hub_id}: {WEIGHTS_FILE} is not in the Hub cache {constants.HF_HUB_CACHE}{offline}; download it "
            f"where there is network (`hf download {hub_id.repo_id}" +
            (f" --revision {hub_id.revision}" if hub_id.revision else "") +
            "`) and copy that cache folder, or point HF_HOME at one that has it") from None
    except (RepositoryNotFoundError, EntryNotFoundError) as error:
        raise HubWeightsUnavailableError(f"{hub_id}: {type(error).__name__}: {str(error).splitlines()[0]}") from None

