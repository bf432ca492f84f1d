"""Turn a study's search space into Optuna suggestions (the only sampling code)."""

from __future__ import annotations

import math
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


class _MiddleTrial:
    """Answers ``suggest``'s questions with the middle of each range, so the walk over the space (and its
    conditional parameters) stays in ``space.suggest``."""

    def __init__(self, pinned: dict[str, Any] | None = None) -> None:
        self.pinned = pinned or {}

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        return self.pinned.get(name, choices[len(choices) // 2])

    def suggest_float(
        self, name: str, low: float, high: float, *, log: bool = False, step: Any = None
    ) -> float:
        return math.sqrt(low * high) if log else (low + high) / 2

    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False, step: int = 1) -> int:
        if name in self.pinned:
            return int(self.pinned[name])
        mid = self.suggest_float(name, low, high, log=log)
        return low + round((mid - low) / step) * step


def representative_params(space: dict[str, Param], **pinned: Any) -> dict[str, Any]:
    """A typical trial: the middle choice of each categorical, the (geometric) middle of each range;
    ``pinned`` (dotted paths as keys via ``**{...}``) fixes some of them."""
    return suggest(_MiddleTrial(pinned), space)  # type: ignore[arg-type]


def describe_range(p: Param) -> str:
    """'1e-04 .. 1e-02 (log)' / '{4, 8, 16}': the 'Range tested' column of a report."""
    if isinstance(p, CategoricalParam):
        return "{" + ", ".join(str(c) for c in p.choices) + "}"
    scale = " (log)" if p.log else ""
    step = f" step {p.step}" if getattr(p, "step", None) not in (None, 1) else ""
    return f"{p.low:g} .. {p.high:g}{scale}{step}"
