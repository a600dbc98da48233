"""The multi-node command of docs/clusters.md, read from the page: the tests launch it (with only the
endpoint, the counts and the id changed) and compare the cluster files with it, so that the page
shows what was run."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

PAGE = Path(__file__).resolve().parents[1] / "docs" / "clusters.md"
MARK = "<!-- the multi-node command:"
# The torchrun options that name the job's size and place: what a test, a scheduler or an operator sets.
PLACE = ("--nnodes", "--nproc-per-node", "--rdzv-endpoint", "--rdzv-id")


@dataclass(frozen=True)
class Launch:
    """`ENV=VALUE ... torchrun TORCHRUN_ARGS --no-python xception train TRAIN_ARGS`."""

    environment: dict[str, str]
    torchrun: list[str]  # torchrun's options, up to and with --no-python
    train: list[str]  # what follows `xception train`

    def option(self, name: str) -> str:
        return self.torchrun[self.torchrun.index(name) + 1]

    def with_place(self, **values: str) -> list[str]:
        """torchrun's options with those of `PLACE` replaced (nnodes="2", rdzv_endpoint="127.0.0.1:29400", ...)."""
        options = list(self.torchrun)
        for key, value in values.items():
            name = "--" + key.replace("_", "-")
            assert name in PLACE, name
            options[options.index(name) + 1] = value
        return options

    def without_place(self) -> list[str]:
        """torchrun's options less `PLACE` and the others a launcher supplies (backend, restarts)."""
        supplied = (*PLACE, "--rdzv-backend", "--max-restarts")
        options, kept = list(self.torchrun), []
        while options:
            word = options.pop(0)
            if word in supplied:
                options.pop(0)
            else:
                kept.append(word)
        return kept


def documented_launch() -> Launch:
    lines = PAGE.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(MARK)) + 2  # past the mark and the fence
    end = lines.index("```", start)
    words = shlex.split(" ".join(line.rstrip("\\") for line in lines[start:end]))
    environment = {}
    while "=" in words[0]:
        name, _, value = words.pop(0).partition("=")
        environment[name] = value
    assert words[0] == "torchrun", words
    split = words.index("--no-python") + 1
    assert words[split:split + 2] == ["xception", "train"], words
    return Launch(environment=environment, torchrun=words[1:split], train=words[split + 2:])
