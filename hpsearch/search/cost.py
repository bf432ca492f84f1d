"""What a study will do, said before its first trial: measured epoch costs, then a forecast of the search.

The rates come from ``hpsearch.training.estimate.measure_cost`` on the smallest and the largest batch size
of the study's space (the middle of every other range, and the mean over the model choices when the model
is searched), so they reflect the models, image size, batch sizes and device actually used. The forecast
replays the search with the study's own pruner and length plan on synthetic learning curves
(``hpsearch.search.simulate``): how many configurations it will evaluate before the deadline, how many reach
the top length, and whether the pruner gets to act at all. Nothing is refused: on a machine where the study
would take days, the text says so and how to make it fit.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hpsearch.search.plan import LengthPlan
from hpsearch.search.simulate import Prediction
from hpsearch.search.space import representative_params
from hpsearch.search.spec import CategoricalParam, IntParam, StudySpec
from hpsearch.training.estimate import CostEstimate
from hpsearch.training.progress import format_duration

_DAY = 86400.0
TRIAL_OVERHEAD_S = 3.0  # per trial outside fit: storage writes, gallery, curves (measured: 1-5 s on a CPU)
# Searched categoricals whose choices differ most in cost, timed choice by choice and averaged rather than
# represented by their middle choice: of [unet, cbam_unet] the middle is cbam_unet, whose steps cost about
# 1.4x a U-Net's on a CPU, so a study searching both was forecast as if every trial were the heavier one
# (the `full` study measured 21.9 img/s at batch 8; its U-Net trials then trained at 31-32).
COST_BEARING = ("model.name",)


def batch_choices(spec: StudySpec) -> list[int]:
    """The batch sizes the space can pick (empty when the batch size is not searched)."""
    p = spec.space.get("train.batch_size")
    if isinstance(p, CategoricalParam):
        return sorted(int(c) for c in p.choices if c is not None)
    if isinstance(p, IntParam):
        return [p.low, p.high] if p.low != p.high else [p.low]
    return []


def epoch_choices(spec: StudySpec, fixed_epochs: int) -> list[int]:
    """Every training length a trial of ``spec`` can have (the fixed one when the length is not searched)."""
    p = spec.space.get("train.epochs")
    if isinstance(p, CategoricalParam):
        return sorted(int(c) for c in p.choices if c is not None)
    if isinstance(p, IntParam):
        return [p.low, p.high] if p.low != p.high else [p.low]
    return [fixed_epochs]


def cost_variants(spec: StudySpec) -> list[dict[str, Any]]:
    """The settings of ``COST_BEARING`` parameters to time and average ([{}] when none is searched)."""
    variants: list[dict[str, Any]] = [{}]
    for name in COST_BEARING:
        p = spec.space.get(name)
        if isinstance(p, CategoricalParam) and len(p.choices) > 1 and not p.when:
            variants = [{**v, name: c} for v in variants for c in p.choices]
    return variants


def mean_cost(costs: list[CostEstimate], variants: list[dict[str, Any]]) -> CostEstimate:
    """One batch size's cost as the mean over ``variants`` (the expected cost of a trial that draws among
    them uniformly, as the sampler's random start-up does); each variant's rate is kept in ``mean_of``."""
    if len(costs) == 1:
        return costs[0]
    each = ", ".join(
        f"{'/'.join(str(v) for v in variant.values())} {c.train_img_per_s:.1f} img/s"
        for variant, c in zip(variants, costs, strict=True)
    )
    return dataclasses.replace(
        costs[0],
        s_per_step=statistics.fmean(c.s_per_step for c in costs),
        val_s=statistics.fmean(c.val_s for c in costs),
        spread=max(c.spread for c in costs),
        mean_of=f"mean of {each}",
    )


def epoch_seconds(costs: list[CostEstimate], batch_sizes: list[int]) -> list[float]:
    """Seconds an epoch takes at each batch size: measured at the ends, the step time linear in between."""
    if len(costs) == 1 or not batch_sizes:
        return [costs[0].s_per_epoch]
    lo, hi = costs[0], costs[-1]
    out = []
    for bs in batch_sizes:
        w = 0.0 if hi.batch_size == lo.batch_size else (bs - lo.batch_size) / (hi.batch_size - lo.batch_size)
        step = lo.s_per_step + w * (hi.s_per_step - lo.s_per_step)
        steps = max(1, lo.n_train // bs)
        steps = min(steps, lo.max_steps) if lo.max_steps else steps
        out.append(step * steps + lo.val_s + w * (hi.val_s - lo.val_s))
    return out


@dataclass(frozen=True)
class StudyCost:
    """Measured epoch costs, the trial lengths, the budget and the replayed search."""

    costs: list[CostEstimate]  # the smallest and the largest batch of the space (one if not searched)
    epochs: list[int]
    n_trials: int | None
    timeout_s: float | None
    workers: int = 1
    plan: LengthPlan | None = None
    forecast: Prediction | None = None
    pruner_wait: str | None = None  # what the pruner waits for before it acts ("4 finished trials")
    pruner_acts: bool = True  # False for the 'none' pruner: nothing to warn about
    batch_sizes: list[int] = field(default_factory=list)

    @property
    def cost(self) -> CostEstimate:
        """The slowest measured configuration."""
        return max(self.costs, key=lambda c: c.s_per_epoch)

    @property
    def longest_trial_s(self) -> float:
        return self.cost.run_s(max(self.epochs))

    @property
    def unpruned_study_s(self) -> float | None:
        """All budgeted trials run to the end, spread over the workers (pruning only shortens this)."""
        if self.n_trials is None:
            return None
        per_epoch = sum(epoch_seconds(self.costs, self.batch_sizes)) / len(
            epoch_seconds(self.costs, self.batch_sizes)
        )
        mean_epochs = sum(self.epochs) / len(self.epochs)
        return self.n_trials * per_epoch * math.ceil(mean_epochs) / max(1, self.workers)

    @property
    def expected_s(self) -> float | None:
        """When the study stops: its time budget, or its forecast (else unpruned) trial budget."""
        options = [s for s in (self.timeout_s, self.unpruned_study_s) if s is not None]
        if self.forecast is not None and self.forecast.elapsed_s is not None and self.timeout_s is None:
            options.append(self.forecast.elapsed_s / max(1, self.workers))
        return min(options) if options else None


def _measured_line(study: StudyCost, scale: str) -> list[str]:
    c = study.costs
    batches = " and ".join(str(x.batch_size) for x in c)
    spread = max(x.spread for x in c)
    lines = [
        f"cost estimate on {c[0].device} at scale '{scale}' (measured: {c[0].windows} timed windows of real "
        f"training steps at batch {batches}, {c[0].image_size}² images; the windows agree within "
        f"±{50 * spread:.0f}%{', a busy machine: rerun later for a firmer figure' if spread > 0.5 else ''}):"
    ]
    for x in c:
        lines.append(
            f"  1 epoch at batch {x.batch_size} ≈ {format_duration(x.s_per_epoch)} ({x.n_train} training "
            f"images at {x.train_img_per_s:.1f} img/s + {format_duration(x.val_s)} validating {x.n_val})"
            + (f"; {x.mean_of}" if x.mean_of else "")
        )
    return lines


def _forecast_lines(study: StudyCost) -> list[str]:
    f = study.forecast
    if f is None:
        return []
    top = max(study.epochs)
    until = (
        f"before --timeout {format_duration(study.timeout_s)}"
        if study.timeout_s is not None
        else f"in its {study.n_trials} trials, ≈ {format_duration(f.elapsed_s / max(1, study.workers))}"
    )
    more = "at least " if f.capped else ""
    noun = "configuration" if round(f.configs) == 1 else "configurations"
    lines = [
        f"  the search (replayed 7 times on synthetic curves with this pruner and plan): {more}"
        f"{f.configs:.0f} {noun} ({f.configs_range[0]:.0f}-{f.configs_range[1]:.0f}) {until}, "
        f"{f.top:.0f} ({f.top_range[0]:.0f}-{f.top_range[1]:.0f}) of them reaching {top} epochs; "
        f"the pruner stops about {f.pruned:.0f} of them before the top"
    ]
    if f.pruned >= 1:
        # The replay's curves do not depend on the parameters, so its sampler never improves. A real
        # sampler that learns lands more of its later picks in a rung's top fraction: in the laptop-scale
        # `full` hour, 12 of 18 TPE picks passed the first rung against 3 of 10 random start-up picks.
        lines.append(
            "  (the replay picks as if at random; a sampler that learns, as TPE after its start-up, "
            "sends more configurations to the top, and so fewer fit)"
        )
    if f.pruned < 1 and study.pruner_acts:
        wait = f" (it waits for {study.pruner_wait})" if study.pruner_wait else ""
        lines.append(
            f"  warning: the pruner cannot act before the deadline{wait}: every configuration trains its "
            "full length, so this is a random pick of the few that fit"
        )
    return lines


def describe(study: StudyCost, *, scale: str, hint_flags: list[str]) -> list[str]:
    """The lines printed before the first trial. ``hint_flags`` are the ways to make a slow study fit."""
    lines = _measured_line(study, scale)
    if study.plan is not None:
        lines.append(
            f"  a trial: {study.plan.describe()}; ≈ {format_duration(study.longest_trial_s)} if it "
            "is never pruned"
        )
    else:
        per_len = ", ".join(
            f"{e} epochs ≈ {format_duration(study.cost.run_s(e))}" for e in sorted(set(study.epochs))
        )
        lines.append(f"  a trial: {per_len}")
    lines += _forecast_lines(study)
    full = study.unpruned_study_s
    if full is not None and study.forecast is None:
        lines.append(
            f"  the study: {study.n_trials} trials ≈ {format_duration(full)} if none is pruned"
            + (f" ({study.workers} workers)" if study.workers > 1 else "")
        )
    if study.timeout_s is not None:
        lines.append(
            f"  --timeout {format_duration(study.timeout_s)}: the study stops then (a running trial is "
            "stopped at the deadline, recorded as pruned and marked stopped by the budget)"
        )
    expected = study.expected_s
    if expected is not None and expected > _DAY and hint_flags:
        lines.append(
            f"  this will take {format_duration(expected)} (days) on this machine. To make it fit: "
            + "; ".join(hint_flags)
            + ". Starting anyway: you decide."
        )
    elif study.longest_trial_s > 6 * 3600 and hint_flags:
        lines.append(
            f"  the longest trial alone takes {format_duration(study.longest_trial_s)}: "
            + "; ".join(hint_flags)
        )
    return lines


def fit_hints(
    *, device_type: str, scale: str, epochs_searched: bool, given: frozenset[str] = frozenset()
) -> list[str]:
    """How to make a study fit this machine, most effective first; never a flag the user already gave."""
    hints = []
    if scale == "full" and "--scale" not in given:
        from hpsearch.training.scale import SCALES

        hints.append(f"--scale laptop ({SCALES.get('laptop').summary})")
    if device_type == "cpu":
        hints.append("a GPU (CUDA or Apple MPS)")
    if "--timeout" not in given:
        hints.append("--timeout SECONDS (a wall-time budget; a resource study sizes its top length to it)")
    if not epochs_searched and "--max-epochs" not in given:
        hints.append("--max-epochs N (shorter trials)")
    if "--n-trials" not in given:
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


def measure_study(prepared: Any, opts: Any, say: Callable[[str], None]) -> list[CostEstimate]:
    """Time the smallest and the largest batch of the study's space on its device and scale, each averaged
    over the choices of a searched model (``COST_BEARING``)."""
    from hpsearch.search.objective import build_trial_config
    from hpsearch.training.estimate import DEFAULT_MAX_S, measure_cost
    from hpsearch.training.session import prepare_data

    spec = prepared.spec
    ctx = prepared.trial_context()
    batches = batch_choices(spec)
    ends: list[int | None] = sorted({batches[0], batches[-1]}) if batches else [None]
    variants = cost_variants(spec)
    which = f"batch {' and '.join(map(str, ends))}" if batches else "the study's batch size"
    if len(variants) > 1:
        which += " × " + ", ".join("/".join(map(str, v.values())) for v in variants)
    n = len(ends) * len(variants)
    say(
        f"measuring what an epoch costs on this machine ({which}; about "
        f"{format_duration(DEFAULT_MAX_S * 1.3 * n)}, a few real training steps at a time) ..."
    )
    costs = []
    for bs in ends:
        at_batch = []
        for variant in variants:
            pinned = {**variant, **({} if bs is None else {"train.batch_size": bs})}
            cfg = build_trial_config(ctx, representative_params(spec.space, **pinned), 0)  # short length
            split = prepared.split.reusable_for(cfg.data) if prepared.split is not None else None
            data = prepare_data(cfg.data, prepared.data_dir, progress=False, known_split=split)
            at_batch.append(measure_cost(cfg, data))
        costs.append(mean_cost(at_batch, variants))
    return costs


def _pruner_wait(spec: StudySpec) -> str | None:
    """What the study's pruner waits for before it can stop anything."""
    kw = spec.pruner.kwargs
    if spec.pruner.name == "median":
        return f"{kw.get('n_startup_trials', 5)} finished trials and {kw.get('n_warmup_steps', 0)} epochs"
    return None


def parallel_workers(costs: list[CostEstimate], workers: int) -> int:
    """How many of ``workers`` add speed: all of them on a CUDA device (its processes overlap well, as a
    two-worker study on one GPU measured), none on a CPU, whose cores the workers share (each gets cores / N
    threads). The device type, not its name: the name is the GPU's model ("NVIDIA H200")."""
    return workers if costs and costs[0].kind == "cuda" else 1


def decide_plan(
    prepared: Any, opts: Any, costs: list[CostEstimate] | None, *, workers: int = 1
) -> LengthPlan | None:
    """The stored plan of a resource study, or a new one (from --max-epochs, --timeout or the study) that is
    stored with it now; None for a study without a ``resource`` section."""
    from hpsearch.search import keys
    from hpsearch.search.plan import budget_plan, default_plan, stored_plan
    from hpsearch.search.spec import study_epochs

    spec = prepared.spec
    if spec.resource is None:
        return None
    plan = stored_plan(prepared.study_attrs())
    if plan is not None:
        return plan
    epochs = study_epochs(spec, opts.overrides)
    if opts.timeout is not None and opts.max_epochs is None and costs:
        s_epochs = epoch_seconds(costs, batch_choices(spec))
        parallel = parallel_workers(costs, workers)
        plan = budget_plan(
            spec.resource,
            pruner_name=spec.pruner.name,
            pruner_kwargs=spec.pruner.kwargs,
            study_epochs=epochs,
            budget_s=opts.timeout * parallel,
            s_per_epoch=s_epochs,
            trial_overhead_s=TRIAL_OVERHEAD_S,
        )
    else:
        plan = default_plan(spec.resource, epochs, opts.max_epochs)
    sid = prepared.storage.get_study_id_from_name(prepared.study_name)
    prepared.storage.set_study_user_attr(sid, keys.LENGTH_PLAN, plan.to_json())
    return plan


def estimate_study(
    prepared: Any, opts: Any, costs: list[CostEstimate], plan: LengthPlan | None, *, workers: int = 1
) -> StudyCost:
    """The forecast of the opened study at the measured costs, before any trial runs."""
    from hpsearch.search.simulate import predict
    from hpsearch.search.spec import study_pruner

    spec = prepared.spec
    if plan is not None:
        epochs = [plan.top]
    else:
        epochs = epoch_choices(spec, prepared.base.train.epochs if prepared.base else 25)
        if opts.max_epochs is not None:
            epochs = [min(e, opts.max_epochs) for e in epochs]
    parallel = parallel_workers(costs, workers)
    remaining = _remaining_trials(prepared, opts)
    forecast = None
    if opts.timeout is not None or remaining:
        forecast = predict(
            pruner_factory=lambda: study_pruner(spec, plan),
            s_per_epoch=epoch_seconds(costs, batch_choices(spec)),
            epochs=epochs if len(epochs) > 1 else epochs[0],
            budget_s=(opts.timeout or math.inf) * parallel,
            trial_overhead_s=TRIAL_OVERHEAD_S,
            max_trials=remaining or 300,
        )
        if remaining and forecast.configs >= remaining:
            forecast = Prediction(**{**forecast.__dict__, "capped": False})
    return StudyCost(
        costs, epochs, remaining, opts.timeout, parallel, plan, forecast, _pruner_wait(spec),
        spec.pruner.name != "none", batch_choices(spec),
    )  # fmt: skip


def given_flags(opts: Any) -> frozenset[str]:
    """The budget and size flags the user gave (a hint never repeats one)."""
    named = {"--timeout": opts.timeout, "--max-epochs": opts.max_epochs, "--n-trials": opts.n_trials,
             "--scale": opts.scale}  # fmt: skip
    return frozenset(flag for flag, value in named.items() if value is not None)


def prepare_search(
    prepared: Any, opts: Any, *, workers: int = 1, estimate: bool = True, say: Callable[[str], None] = print
) -> StudyCost | None:
    """Before the first trial: measure (when an estimate is asked for, or a --timeout must size the top
    length), decide and store the length plan, and say what the search will do."""
    from hpsearch.search.plan import stored_plan

    spec = prepared.spec
    sizing = (
        spec.resource is not None
        and opts.timeout is not None
        and opts.max_epochs is None
        and stored_plan(prepared.study_attrs()) is None
    )
    costs = measure_study(prepared, opts, say) if (estimate or sizing) else None
    plan = decide_plan(prepared, opts, costs, workers=workers)
    if not estimate or costs is None:
        if plan is not None:
            say(f"length plan: {plan.describe()}")
        return None
    study = estimate_study(prepared, opts, costs, plan, workers=workers)
    hints = fit_hints(
        device_type=study.cost.device.split()[0].lower(),
        scale=prepared.scale,
        epochs_searched="train.epochs" in spec.space,
        given=given_flags(opts),
    )
    for line in describe(study, scale=prepared.scale, hint_flags=hints):
        say(line)
    return study
