"""What a study will cost, said before its first trial: measured step times turned into trial and study time.

The rate comes from ``hpsearch.training.estimate.measure_cost`` on a representative trial of the study (the
middle of every searched range), so it reflects the model, image size, batch size and device actually used.
Nothing is refused: on a machine where the study would take days, the text says so and how to make it fit.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

from hpsearch.search.space import suggest
from hpsearch.search.spec import CategoricalParam, IntParam, Param, StudySpec
from hpsearch.training.estimate import CostEstimate
from hpsearch.training.progress import format_duration

_DAY = 86400.0


class _MiddleTrial:
    """Answers ``suggest``'s questions with the middle of each range, so the walk over the space (and its
    conditional parameters) stays in ``space.suggest``."""

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        return choices[len(choices) // 2]

    def suggest_float(
        self, name: str, low: float, high: float, *, log: bool = False, step: Any = None
    ) -> float:
        return math.sqrt(low * high) if log else (low + high) / 2

    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False, step: int = 1) -> int:
        mid = self.suggest_float(name, low, high, log=log)
        return low + round((mid - low) / step) * step


def representative_params(space: dict[str, Param]) -> dict[str, Any]:
    """A typical trial: the middle choice of each categorical, the (geometric) middle of each range."""
    return suggest(_MiddleTrial(), space)  # type: ignore[arg-type]


def epoch_choices(spec: StudySpec, fixed_epochs: int) -> list[int]:
    """Every training length a trial of ``spec`` can have (the fixed one when the length is not searched)."""
    p = spec.space.get("train.epochs")
    if isinstance(p, CategoricalParam):
        return sorted(int(c) for c in p.choices if c is not None)
    if isinstance(p, IntParam):
        return [p.low, p.high] if p.low != p.high else [p.low]
    return [fixed_epochs]


@dataclass(frozen=True)
class StudyCost:
    """Seconds a study's trials take at a measured rate."""

    cost: CostEstimate
    epochs: list[int]
    n_trials: int | None
    timeout_s: float | None
    workers: int = 1

    @property
    def longest_trial_s(self) -> float:
        return self.cost.run_s(max(self.epochs))

    @property
    def typical_trial_s(self) -> float:
        return self.cost.run_s(int(statistics.median(self.epochs)))

    @property
    def unpruned_study_s(self) -> float | None:
        """All budgeted trials run to the end, spread over the workers (pruning only shortens this)."""
        if self.n_trials is None:
            return None
        mean_epochs = statistics.mean(self.epochs)
        return self.n_trials * self.cost.run_s(math.ceil(mean_epochs)) / max(1, self.workers)

    @property
    def expected_s(self) -> float | None:
        """When the study stops: its time budget, or its unpruned trial budget if that comes first."""
        options = [s for s in (self.timeout_s, self.unpruned_study_s) if s is not None]
        return min(options) if options else None


def describe(study: StudyCost, *, scale: str, hint_flags: list[str]) -> list[str]:
    """The lines printed before the first trial. ``hint_flags`` are the ways to make a slow study fit."""
    c = study.cost
    lines = [
        f"cost estimate on {c.device} at scale '{scale}' (measured: a few real training steps and a "
        f"validation slice, {c.image_size}² images, batch {c.batch_size}):",
        f"  1 epoch ≈ {format_duration(c.s_per_epoch)} ({c.n_train} training images at "
        f"{c.train_img_per_s:.1f} img/s + {format_duration(c.val_s)} validating {c.n_val})",
    ]
    lengths = sorted(set(study.epochs))
    per_len = ", ".join(f"{e} epochs ≈ {format_duration(c.run_s(e))}" for e in lengths)
    lines.append(f"  a trial: {per_len}")
    full = study.unpruned_study_s
    if full is not None:
        lines.append(
            f"  the study: {study.n_trials} trials ≈ {format_duration(full)} if none is pruned"
            + (f" ({study.workers} workers)" if study.workers > 1 else "")
        )
    if study.timeout_s is not None:
        lines.append(
            f"  --timeout {format_duration(study.timeout_s)}: the study stops then (a running trial is "
            "stopped at the deadline and recorded as pruned)"
        )
    expected = study.expected_s
    if expected is not None and expected > _DAY:
        lines.append(
            f"  this will take {format_duration(expected)} (days) on this machine. To make it fit: "
            + "; ".join(hint_flags)
            + ". Starting anyway: you decide."
        )
    elif study.longest_trial_s > 6 * 3600:
        lines.append(f"  the longest trial alone takes {format_duration(study.longest_trial_s)}: "
                     + "; ".join(hint_flags))
    return lines


def fit_hints(*, device_type: str, scale: str, epochs_searched: bool) -> list[str]:
    """How to make a study fit this machine, most effective first."""
    hints = []
    if scale == "full":
        from hpsearch.training.scale import SCALES

        hints.append(f"--scale laptop ({SCALES.get('laptop').summary})")
    if device_type == "cpu":
        hints.append("a GPU (CUDA or Apple MPS)")
    hints.append(
        "--timeout SECONDS (stop after a wall-time budget)"
        if epochs_searched
        else "--max-epochs N (shorter trials)"
    )
    hints.append("--n-trials N (fewer trials)")
    return hints


def _remaining_trials(prepared: Any, opts: Any) -> int | None:
    """Trials this run will still start: the study's waiting budget tickets, else ``--n-trials``."""
    import optuna

    from hpsearch.search import keys

    if keys.BUDGET_N_TRIALS in prepared.study_attrs():
        sid = prepared.storage.get_study_id_from_name(prepared.study_name)
        waiting = (optuna.trial.TrialState.WAITING,)
        return len(prepared.storage.get_all_trials(sid, deepcopy=False, states=waiting))
    return opts.n_trials


def estimate_study(prepared: Any, opts: Any, *, workers: int = 1) -> StudyCost:
    """Measure a representative trial of the opened study on its device and scale, before any trial runs."""
    from hpsearch.search.objective import TrialContext, build_trial_config
    from hpsearch.training.estimate import measure_cost
    from hpsearch.training.runner import prepare_data

    spec = prepared.spec
    ctx = TrialContext(
        spec=spec,
        data_dir=prepared.data_dir,
        out_root=prepared.out_root,
        overrides=dict(opts.overrides),
        device=opts.device,
        max_epochs=opts.max_epochs,
        scale=prepared.scale,
    )
    cfg = build_trial_config(ctx, representative_params(spec.space), 0)
    data = prepare_data(cfg.data, prepared.data_dir, progress=False)
    cost = measure_cost(cfg, data)
    epochs = epoch_choices(spec, cfg.train.epochs)
    if opts.max_epochs is not None:
        epochs = [min(e, opts.max_epochs) for e in epochs]
    # Worker processes on one CPU share its cores (each gets cores / N threads): no speed-up to count on.
    parallel = workers if cost.device.lower().startswith("cuda") else 1
    return StudyCost(cost, epochs, _remaining_trials(prepared, opts), opts.timeout, parallel)


def estimate_lines(prepared: Any, opts: Any, *, workers: int = 1) -> list[str]:
    """``estimate_study`` as the lines ``hpsearch run`` prints before the first trial."""
    study = estimate_study(prepared, opts, workers=workers)
    hints = fit_hints(
        device_type=study.cost.device.split()[0].lower(),
        scale=prepared.scale,
        epochs_searched="train.epochs" in prepared.spec.space,
    )
    return describe(study, scale=prepared.scale, hint_flags=hints)
