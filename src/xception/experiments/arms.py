"""From an experiment's arms (data) to concrete networks at a scale, parameter counts matched."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from xception.experiments.definition import Arm, Comparison
from xception.experiments.matching import WidthMatch, count_model_parameters, match_width
from xception.experiments.scales import Scale
from xception.models import create_model
from xception.models.registry import model_family, resolve_config

# Middle-flow depths an Xception arm may take when width alone cannot match a count.
MAX_MIDDLE_REPEATS = 12


@dataclass(frozen=True)
class ResolvedArm:
    """An arm made concrete: `create_model(model, **overrides)` builds it."""

    label: str
    model: str
    overrides: dict[str, Any]
    parameters: int
    match: WidthMatch | None  # how its width was found, when it was matched to another arm
    matched_to: str | None


def _fc_layers(arm: Arm, model: str, overrides: dict[str, Any], *, in_channels: int) -> tuple[int, ...]:
    if arm.fc_multiple is None:
        return ()
    features = create_model(model, num_classes=0, in_channels=in_channels, **overrides).num_features
    return (arm.fc_multiple * features,) * arm.fc_count


def _depth_preference(start: int) -> list[int]:
    """`start`, then the depths next to it, nearest first (start, start - 1, start + 1, ...)."""
    others = sorted(range(0, MAX_MIDDLE_REPEATS + 1), key=lambda d: (abs(d - start), d))
    return [start, *(d for d in others if d != start)]


def resolve_arm(
    arm: Arm, *, scale: Scale, target: int | None, tolerance: float, num_classes: int, in_channels: int
) -> ResolvedArm:
    """`arm` at `scale`; with a `target`, its width (and Xception middle-flow depth) matched to it."""
    model = scale.models[arm.family]
    if model_family(model) != arm.family:
        raise ValueError(f"scale {scale.name!r} gives {arm.family} arms the model {model!r}, which is "
                         f"{model_family(model)}; map each family to one of its own models")
    overrides: dict[str, Any] = {**scale.base_overrides(arm.family), **arm.overrides}

    def complete(width: float | None, depth: int | None) -> dict[str, Any]:
        values = dict(overrides)
        if width is not None:
            values["width"] = width
        if depth is not None:
            values["middle_repeats"] = depth
        values["fc_layers"] = _fc_layers(arm, model, values, in_channels=in_channels)
        return values

    match = None
    if target is not None:
        as_is = count_model_parameters(model, complete(None, None), num_classes=num_classes, in_channels=in_channels)
    if target is not None and abs(as_is - target) <= tolerance * target:
        # Already within tolerance (Xception and Inception V3 at the paper's size): keep it as it is.
        config = resolve_config(model, **overrides)
        match = WidthMatch(width=config.width, depth=getattr(config, "middle_repeats", None), parameters=as_is,
                           target=target)
        overrides = complete(None, None)
    elif target is not None:
        # Only Xception has a middle flow whose depth can be searched too.
        depths: list[int | None] = [None]
        if arm.family == "xception":
            depths = [*_depth_preference(resolve_config(model, **overrides).middle_repeats)]
        match = match_width(
            target=target,
            count=lambda w, d: count_model_parameters(model, complete(w, d), num_classes=num_classes,
                                                      in_channels=in_channels),
            depths=depths,
            tolerance=tolerance,
        )
        overrides = complete(match.width, match.depth)
    else:
        overrides = complete(None, None)
    if not overrides["fc_layers"]:
        del overrides["fc_layers"]
    parameters = count_model_parameters(model, overrides, num_classes=num_classes, in_channels=in_channels)
    return ResolvedArm(arm.label, model, overrides, parameters, match, arm.match_to)


def resolve_arms(comparison: Comparison, scale: Scale, *, num_classes: int, in_channels: int) -> tuple[ResolvedArm, ...]:
    """Every arm of `comparison` at `scale`, in the comparison's order; matched arms after their targets."""
    resolved: dict[str, ResolvedArm] = {}
    pending = list(comparison.arms)
    while pending:
        ready = [a for a in pending if a.match_to is None or a.match_to in resolved]
        if not ready:
            raise ValueError(f"experiment {comparison.name!r}: arms {[a.label for a in pending]} match to "
                             "arms that do not exist or match to each other")
        for arm in ready:
            target = resolved[arm.match_to].parameters if arm.match_to else None
            resolved[arm.label] = resolve_arm(arm, scale=scale, target=target, tolerance=comparison.tolerance,
                                              num_classes=num_classes, in_channels=in_channels)
            pending.remove(arm)
    return tuple(resolved[a.label] for a in comparison.arms)
