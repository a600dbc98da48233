"""One configuration layer: one `--set` grammar, one resolver of "named config + overrides", and the
data sources as a registry whose names every command line offers."""

from __future__ import annotations

import importlib

import pytest

from xception.config_fields import FieldTypeError, parse_assignment, with_overrides
from xception.errors import UnknownFieldError, UserError


@pytest.mark.parametrize("text,expected", [
    ("epochs=2", ("epochs", 2)), ("lr=0.1", ("lr", 0.1)), ("fc_layers=[24, 8]", ("fc_layers", (24, 8))),
    ("path=/data/x", ("path", "/data/x")), ("ground_truth=null", ("ground_truth", None)), ("augment=true", ("augment", True)),
])
def test_one_set_grammar(text, expected):
    assert parse_assignment(text) == expected


@pytest.mark.parametrize("text", ["epochs", "=3"])
def test_a_malformed_assignment_is_a_user_error(text):
    with pytest.raises(UserError, match="--set expects key=value"):
        parse_assignment(text)


def _named_configs():
    from xception.experiments.scales import get_scale
    from xception.experiments.transfer import TransferStudy
    from xception.models.registry import resolve_config
    from xception.train.recipes import get_recipe

    return [("model 'xception_small'", lambda **o: resolve_config("xception_small", **o), "fc_layers", [32]),
            ("recipe", lambda **o: get_recipe("fashion_mnist_demo", **o), "lr", 0.5),
            ("scale", lambda **o: get_scale("quick", **o), "seeds", 2),
            ("transfer study", lambda **o: with_overrides(TransferStudy(), o, what="transfer study"), "seeds", 2)]


@pytest.mark.parametrize("index", range(4))
def test_every_named_config_resolves_alike(index):
    what, resolve, field, value = _named_configs()[index]
    resolved = resolve(**{field: value})
    assert getattr(resolved, field) == (tuple(value) if isinstance(value, list) else value)
    with pytest.raises(UnknownFieldError, match=rf"unknown {what} field\(s\) \['nope'\]; valid: .*{field}"):
        resolve(nope=1)
    with pytest.raises(FieldTypeError, match=field):
        resolve(**{field: "many"})


def test_a_model_override_given_as_json_becomes_the_configs_types():
    from xception.models.registry import resolve_config
    from xception.models.xception import BlockSpec

    config = resolve_config("xception_small", middle_flow={"channels": [32, 32], "sepconv_activation": True})
    assert config.middle_flow == BlockSpec((32, 32), sepconv_activation=True)


def test_the_data_sources_are_one_registry():
    from xception.data.config import DataConfig
    from xception.data.sources import DATA_SOURCES, SOURCES, get_source

    assert SOURCES == tuple(DATA_SOURCES)
    for source in DATA_SOURCES.values():
        if source.builder is None:
            assert source.refusal
            continue
        module, _, function = source.builder.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), source.name
    with pytest.raises(UserError, match="use one of fashion_mnist, imagefolder"):
        get_source("imagenette")
    with pytest.raises(UserError, match="unknown"):
        DataConfig(source="imagenette", path=None, image_size=28)


@pytest.mark.parametrize("command,option", [("train", "--dataset"), ("eval", "--dataset")])
def test_every_command_line_offers_the_registrys_sources(command, option):
    from xception.cli import build_parser
    from xception.data.sources import SOURCES

    parser = build_parser()
    sub = next(a for a in parser._subparsers._group_actions[0].choices.items() if a[0] == command)[1]
    action = next(a for a in sub._actions if option in a.option_strings)
    assert tuple(action.choices) == SOURCES
