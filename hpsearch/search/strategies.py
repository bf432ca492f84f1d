"""Sampler and pruner registries, rebuilt from the spec stored with a study (Optuna does not store them)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import optuna

from hpsearch.errors import ConfigError
from hpsearch.registry import Registry

if TYPE_CHECKING:
    from hpsearch.search.plan import LengthPlan
    from hpsearch.search.spec import StudySpec

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


def study_pruner(spec: StudySpec, plan: LengthPlan | None = None) -> optuna.pruners.BasePruner:
    """The pruner of a study: its own kwargs, plus the rungs of its length plan for a resource study
    (``plan=None``: the plan without a budget, from the study's own length)."""
    kwargs = dict(spec.pruner.kwargs)
    if spec.resource is not None:
        if plan is None:
            from hpsearch.search.plan import default_plan
            from hpsearch.training.config import parse_run_config

            plan = default_plan(spec.resource, parse_run_config(spec.fixed).train.epochs)
        kwargs.update(plan.pruner_kwargs(spec.pruner.name))
    return build_pruner(spec.pruner.name, kwargs)
