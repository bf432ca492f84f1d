"""Sampler and pruner registries, rebuilt from the spec stored with a study (Optuna does not store them)."""

from __future__ import annotations

from typing import Any

import optuna

from hpsearch.errors import ConfigError
from hpsearch.registry import Registry

# Optuna's own classes: their signatures are what Registry.create checks a study's kwargs against, so a typo
# in `sampler.kwargs` or `pruner.kwargs` names the valid options.
SAMPLERS: Registry[type[optuna.samplers.BaseSampler]] = Registry("sampler")
SAMPLERS.add("tpe", optuna.samplers.TPESampler)
SAMPLERS.add("random", optuna.samplers.RandomSampler)

PRUNERS: Registry[type[optuna.pruners.BasePruner]] = Registry("pruner")
PRUNERS.add("median", optuna.pruners.MedianPruner)
PRUNERS.add("hyperband", optuna.pruners.HyperbandPruner)
PRUNERS.add("successive_halving", optuna.pruners.SuccessiveHalvingPruner)
PRUNERS.add("none", optuna.pruners.NopPruner)


def build_sampler(name: str, seed: int, kwargs: dict[str, Any]) -> optuna.samplers.BaseSampler:
    """A sampler from the registry; ``seed`` should differ per worker so workers don't repeat each other."""
    if "seed" in kwargs:
        raise ConfigError(f"sampler '{name}': kwargs.seed is not an option here; set sampler.seed instead")
    return SAMPLERS.create(name, seed=seed, **kwargs)


# The median pruner compares a trial with the median of the others at the same step. Optuna's default asks
# for one other trial there, so one finished trial could prune everything below it alone; three is the
# least that makes a median.
MEDIAN_MIN_TRIALS = 3


def build_pruner(name: str, kwargs: dict[str, Any]) -> optuna.pruners.BasePruner:
    """A pruner from the registry (the median pruner needs ``MEDIAN_MIN_TRIALS`` trials at a step unless
    told otherwise)."""
    if name == "median":
        kwargs = {"n_min_trials": MEDIAN_MIN_TRIALS, **kwargs}
    return PRUNERS.create(name, **kwargs)
