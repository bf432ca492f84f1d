"""Turn a study's search space into Optuna suggestions (the only sampling code)."""

from __future__ import annotations

from typing import Any

import optuna

from hpsearch.search.spec import CategoricalParam, FloatParam, IntParam, Param


def suggest(trial: optuna.Trial, space: dict[str, Param]) -> dict[str, Any]:
    """Ask the trial for every parameter of ``space``; returns {dotted path: value}."""
    values: dict[str, Any] = {}
    for name, p in space.items():
        if p.when and any(values.get(dep) != want for dep, want in p.when.items()):
            continue  # conditional parameter whose condition does not hold: not part of this trial
        if isinstance(p, FloatParam):
            values[name] = trial.suggest_float(name, p.low, p.high, log=p.log, step=p.step)
        elif isinstance(p, IntParam):
            values[name] = trial.suggest_int(name, p.low, p.high, log=p.log, step=p.step)
        elif isinstance(p, CategoricalParam):
            values[name] = trial.suggest_categorical(name, p.choices)
        else:  # pragma: no cover - the discriminated union makes this unreachable
            raise TypeError(f"unsupported parameter type {type(p).__name__}")
    return values


def describe_range(p: Param) -> str:
    """'1e-04 .. 1e-02 (log)' / '{4, 8, 16}': the 'Range tested' column of a report."""
    if isinstance(p, CategoricalParam):
        return "{" + ", ".join(str(c) for c in p.choices) + "}"
    scale = " (log)" if p.log else ""
    step = f" step {p.step}" if getattr(p, "step", None) not in (None, 1) else ""
    return f"{p.low:g} .. {p.high:g}{scale}{step}"
