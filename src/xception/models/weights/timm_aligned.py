"""timm's aligned Xception state dicts (`xception41/65/71`, `xception41p/65p`) -> our keys.

timm's tree: `stem.0` / `stem.1` (ConvNormAct `conv` + `bn`; in the pre-activation models
`stem.1` is a bare convolution), `blocks.<i>` (our block<i + 2>) with `stack.conv<m>` the
separable convolution m: `conv_dw`, `bn_dw` (our `mid_bn`), `conv_pw`, `bn_pw` (our `bn<m>`), or
in the pre-activation models `norm` (our `bn<m>`, before it) and the block's own `norm` (our
`preact.bn`); `shortcut` (`conv` + `bn`, or a bare convolution), and `head.fc`. Same tensors,
same order of operations: these load exactly (tests/test_timm_aligned.py).
"""

from __future__ import annotations

import re

import torch
from torch import nn

from xception.models.weights.assign import SourceTensor
from xception.models.weights.timm_xception import block_paths

# (pattern with named groups, our key template): `b` is timm's block index, `m` the separable
# convolution, `s` the stem convolution, `f` a tensor's own name.
_F = r"(?P<f>weight|bias|running_mean|running_var|num_batches_tracked)"
_RENAMES: tuple[tuple[str, str], ...] = (
    (r"stem\.(?P<s>[01])\.conv\.weight", "stem.conv{s}.weight"),
    (r"stem\.1\.weight", "stem.conv2.weight"),
    (rf"stem\.(?P<s>[01])\.bn\.{_F}", "stem.bn{s}.{f}"),
    (r"blocks\.(?P<b>\d+)\.shortcut(\.conv)?\.weight", "{block}.shortcut.conv.weight"),
    (rf"blocks\.(?P<b>\d+)\.shortcut\.bn\.{_F}", "{block}.shortcut.bn.{f}"),
    (rf"blocks\.(?P<b>\d+)\.norm\.{_F}", "{block}.preact.bn.{f}"),
    (r"blocks\.(?P<b>\d+)\.stack\.conv(?P<m>\d)\.conv_dw\.weight", "{block}.main.sepconv{m}.depthwise.weight"),
    (rf"blocks\.(?P<b>\d+)\.stack\.conv(?P<m>\d)\.bn_dw\.{_F}", "{block}.main.sepconv{m}.mid_bn.{f}"),
    (r"blocks\.(?P<b>\d+)\.stack\.conv(?P<m>\d)\.conv_pw\.weight", "{block}.main.sepconv{m}.pointwise.weight"),
    (rf"blocks\.(?P<b>\d+)\.stack\.conv(?P<m>\d)\.(bn_pw|norm)\.{_F}", "{block}.main.bn{m}.{f}"),
    (r"head\.fc\.(?P<f>weight|bias)", "classifier.{f}"),
)


def looks_like_timm_aligned(keys: list[str]) -> bool:
    """Whether state-dict keys come from timm's xception_aligned.py models."""
    return "blocks.0.stack.conv1.conv_dw.weight" in keys


def from_timm_aligned(state_dict: dict[str, torch.Tensor], model: nn.Module) -> dict[str, SourceTensor]:
    """Rename a timm aligned-Xception state dict to `model`'s keys (a registered aligned Xception)."""
    blocks = block_paths(model)
    return {_our_key(key, blocks): SourceTensor(value, key) for key, value in state_dict.items()}


def _our_key(key: str, blocks: dict[int, str]) -> str:
    match, template = next(
        ((m, t) for p, t in _RENAMES if (m := re.fullmatch(p, key)) is not None), (None, None)
    )
    if match is None:
        raise ValueError(f"timm aligned Xception tensor {key!r} has no counterpart in this project's Xception")
    fields = {name: value for name, value in match.groupdict().items() if value is not None}
    if "s" in fields:
        fields["s"] = int(fields["s"]) + 1
    if "b" in fields:
        number = int(fields["b"]) + 2  # timm's blocks.0 is Keras-style block2
        if number not in blocks:
            raise ValueError(f"timm tensor {key!r}: model has no block{number}; it holds another architecture")
        fields["block"] = blocks[number]
    return template.format(**fields)
