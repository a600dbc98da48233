"""timm's `legacy_xception` and Cadene's `pretrainedmodels` Xception state dicts -> our keys.

Their module tree (tstandley's port): `conv1/bn1/conv2/bn2` (our stem), `block1` .. `block12`
(Keras' block2 .. block13) with `rep.<i>` the ReLU / SeparableConv2d (`conv1` = depthwise,
`pointwise`) / BatchNorm sequence and `skip/skipbn` the shortcut, `conv3/bn3/conv4/bn4` (block14),
and `fc` (timm) or `last_linear` (Cadene) the logistic layer. Within `rep`, separable convolution
m sits at index 3(m-1) or 3(m-1)+1 and its BatchNorm right after it, so i // 3 + 1 is m.

The tensors are the same; the networks are not quite: those ports use BatchNorm epsilon 1e-5 and
symmetric max-pool padding (see docs/weights.md). Loading their weights here runs them with Keras'
numerics, which is what the weights were trained with when they came from Keras.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from xception.models.weights.assign import SourceTensor

_BN = r"(weight|bias|running_mean|running_var|num_batches_tracked)"
# (pattern, our key template); {block} is our block path for the timm block number.
_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), template)
    for pattern, template in (
        (r"^conv([12])\.weight$", "stem.conv{0}.weight"),
        (rf"^bn([12])\.{_BN}$", "stem.bn{0}.{1}"),
        (r"^block(\d+)\.skip\.weight$", "{block}.shortcut.conv.weight"),
        (rf"^block(\d+)\.skipbn\.{_BN}$", "{block}.shortcut.bn.{1}"),
        (r"^block(\d+)\.rep\.(\d+)\.conv1\.weight$", "{block}.main.sepconv{m}.depthwise.weight"),
        (r"^block(\d+)\.rep\.(\d+)\.pointwise\.weight$", "{block}.main.sepconv{m}.pointwise.weight"),
        (rf"^block(\d+)\.rep\.(\d+)\.{_BN}$", "{block}.main.bn{m}.{2}"),
        (r"^conv([34])\.conv1\.weight$", "{last}.main.sepconv{n}.depthwise.weight"),
        (r"^conv([34])\.pointwise\.weight$", "{last}.main.sepconv{n}.pointwise.weight"),
        (rf"^bn([34])\.{_BN}$", "{last}.main.bn{n}.{1}"),
        (r"^(?:fc|last_linear)\.(weight|bias)$", "classifier.{0}"),
    )
)


def looks_like_timm_xception(keys: list[str]) -> bool:
    """Whether state-dict keys come from timm's legacy_xception or Cadene's xception."""
    return any(key.startswith("block1.rep.") for key in keys) and "conv1.weight" in keys


def from_timm_xception(state_dict: dict[str, torch.Tensor], model: nn.Module) -> dict[str, SourceTensor]:
    """Rename a timm/Cadene Xception state dict to `model`'s keys (an `Xception` at the paper's depth)."""
    blocks = block_paths(model)
    last = blocks[max(blocks)]
    state: dict[str, SourceTensor] = {}
    for key, value in state_dict.items():
        for pattern, template in _RULES:
            match = pattern.match(key)
            if match is None:
                continue
            groups = match.groups()
            fields: dict[str, object] = {"last": last}
            if template.startswith("{block}"):
                number = int(groups[0]) + 1  # timm's block1 is Keras' block2
                if number not in blocks:
                    raise ValueError(f"timm tensor {key!r}: model has no block{number}; it holds another architecture")
                fields["block"] = blocks[number]
                if "{m}" in template:
                    fields["m"] = int(groups[1]) // 3 + 1
            elif template.startswith("{last}"):
                fields.update(n=int(groups[0]) - 2)
            if value.dim() == 2 and key.endswith("pointwise.weight"):
                value = value[:, :, None, None]  # some Cadene files store 1x1 kernels as matrices
            state[template.format(*groups, **fields)] = SourceTensor(value, key)
            break
        else:
            raise ValueError(f"timm/Cadene Xception tensor {key!r} has no counterpart in this project's Xception")
    return state


def block_paths(model: nn.Module) -> dict[int, str]:
    """{n: "entry_flow.block<n>", ...} for every module after the stem (Keras numbering)."""
    paths = {}
    for flow_name in ("entry_flow", "middle_flow", "exit_flow"):
        flow = getattr(model, flow_name, None)
        if flow is None:
            raise ValueError(
                f"timm/Cadene Xception weights load into Xception models only, not {type(model).__name__}"
            )
        for block_name in flow._modules:
            paths[int(block_name.removeprefix("block"))] = f"{flow_name}.{block_name}"
    return paths
