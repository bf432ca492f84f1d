"""Sampler and pruner registries, rebuilt from the spec stored with a study (Optuna does not store them)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna

from hpsearch.errors import ConfigError
from hpsearch.registry import Registry

SAMPLERS: Registry[Callable[..., optuna.samplers.BaseSampler]] = Registry("sampler")
SAMPLERS.add("tpe", lambda seed, **kw: optuna.samplers.TPESampler(seed=seed, **kw))
SAMPLERS.add("random", lambda seed, **kw: optuna.samplers.RandomSampler(seed=seed, **kw))

PRUNERS: Registry[Callable[..., optuna.pruners.BasePruner]] = Registry("pruner")
PRUNERS.add("median", lambda **kw: optuna.pruners.MedianPruner(**kw))
PRUNERS.add("hyperband", lambda **kw: optuna.pruners.HyperbandPruner(**kw))
PRUNERS.add("successive_halving", lambda **kw: optuna.pruners.SuccessiveHalvingPruner(**kw))
PRUNERS.add("none", lambda **kw: optuna.pruners.NopPruner(**kw))


def _build(registry: Registry, name: str, kwargs: dict[str, Any], **extra: Any) -> Any:
    factory = registry.get(name)
    try:
        return factory(**extra, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"{registry.kind} '{name}': bad kwargs {kwargs}: {exc}") from None


def build_sampler(name: str, seed: int, kwargs: dict[str, Any]) -> optuna.samplers.BaseSampler:
    """A sampler from the registry; ``seed`` should differ per worker so workers don't repeat each other."""
    return _build(SAMPLERS, name, kwargs, seed=seed)


def build_pruner(name: str, kwargs: dict[str, Any]) -> optuna.pruners.BasePruner:
    """A pruner from the registry."""
    return _build(PRUNERS, name, kwargs)
