"""Registry.create: the one keyword check and error wrapping behind models, losses, attention, samplers."""

from __future__ import annotations

import pytest

from hpsearch.errors import ConfigError
from hpsearch.registry import Registry


def _widget(channels: int, *, width: int = 2, gain: float = 1.0) -> tuple[int, int, float]:
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    return channels, width, gain


@pytest.fixture
def reg() -> Registry:
    r: Registry = Registry("widget")
    r.add("w", _widget)
    r.add("loose", lambda **kw: kw)
    return r


def test_create_passes_positional_and_keyword_values(reg: Registry) -> None:
    assert reg.create("w", 8, width=3) == (8, 3, 1.0)


def test_a_miss_lists_the_valid_names(reg: Registry) -> None:
    with pytest.raises(ConfigError, match=r"unknown widget 'nope'; expected one of: loose, w"):
        reg.create("nope")


def test_an_unknown_option_names_the_valid_ones_but_not_the_positional(reg: Registry) -> None:
    with pytest.raises(ConfigError) as exc:
        reg.create("w", 8, widht=3)
    assert "unknown option(s) widht for widget 'w'; valid options: width, gain" in str(exc.value)


def test_an_invalid_value_is_a_config_error_naming_the_entry(reg: Registry) -> None:
    with pytest.raises(ConfigError, match=r"invalid options for widget 'w'.*width must be >= 1"):
        reg.create("w", 8, width=0)


def test_factories_taking_any_keyword_are_not_second_guessed(reg: Registry) -> None:
    assert reg.create("loose", a=1) == {"a": 1}
    assert reg.accepted_kwargs("loose") == []
    assert reg.accepted_kwargs("w", skip=("channels",)) == ["width", "gain"]


def test_defaults_are_the_factory_s_own(reg: Registry) -> None:
    assert reg.defaults("w") == {"width": 2, "gain": 1.0}
    assert reg.defaults("loose") == {}
    with pytest.raises(ConfigError, match="unknown widget 'nope'"):
        reg.defaults("nope")
