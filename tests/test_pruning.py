"""Pruning is fair to every schedule a shipped study can train: scripted curves through each study's pruner.

No training: each trial is a per-epoch validation-Dice curve, fed through an in-memory Optuna study with
ask / tell around the real ``PruningCallback`` (which reports the running best and asks the pruner). The
pruner is the one the study file names, built as a worker builds it.

The curve model (``dice_curve``) is what makes schedules matter: every trial learns at the same pace (scaled
by its quality), and on top of that collects an annealing gain as its learning rate falls. Under a cosine
schedule the LR falls as a function of ``epoch / epochs``, so at the same epoch a short schedule has already
collected most of its gain while a long one has not; a pruner that compares them at that epoch sees the long
trial behind even when it ends best. A constant LR collects no such gain, so there epoch k means the same
thing for every run length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import optuna
import pytest
from optuna.trial import TrialState

from hpsearch.search.objective import PruningCallback
from hpsearch.search.plan import default_plan
from hpsearch.search.spec import (
    CategoricalParam,
    IntParam,
    StudySpec,
    builtin_studies,
    load_study_spec,
    study_epochs,
    study_pruner,
)
from hpsearch.training.config import resolve_run_config

HALVING = {"hyperband", "successive_halving"}  # pruners that compare the value reported at a rung
SHIPPED = tuple(builtin_studies())  # every study file in studies/, new ones included

LEARN_EPOCHS = 4.0  # time constant of the shared learning progress, in epochs
ANNEAL_GAIN = 0.12  # Dice a schedule gains by the time its LR has fallen to zero
LONG_QUALITY = 0.80  # the trial that ends best
OTHER_QUALITIES = tuple(0.70 + 0.008 * i for i in range(12))  # nearly as good, as late in a search
BAD_DICE = 0.15
# Each scenario trial runs this many times: Hyperband sends each trial number to one of its brackets (each
# with its own rungs), and nine trial numbers after the others cover all three of `full`'s brackets.
REPEATS = 9


@dataclass(frozen=True)
class Schedules:
    """The run lengths and LR schedules a study's trials can have, and the warm-up they share."""

    epochs: tuple[int, ...]
    schedulers: tuple[str, ...]
    warmup: int


def _choices(spec: StudySpec, path: str, default: object) -> tuple:
    param = spec.space.get(path)
    if param is None:
        return (default,)
    if isinstance(param, CategoricalParam):
        return tuple(param.choices)
    if isinstance(param, IntParam):
        return (param.low, param.high)
    raise AssertionError(f"{spec.name}: {path} is searched as {param.type}; this test knows no such curve")


def schedules_of(spec: StudySpec) -> Schedules:
    """Read the study's possible schedules from its ``space`` (searched) or resolved ``fixed`` (one value)."""
    train = resolve_run_config(spec.fixed, source=spec.name).train
    epochs = tuple(sorted(int(e) for e in _choices(spec, "train.epochs", train.epochs)))
    schedulers = tuple(str(s) for s in _choices(spec, "train.scheduler", train.scheduler))
    assert "train.warmup_epochs" not in spec.space, "extend schedules_of to searched warm-ups"
    return Schedules(epochs=epochs, schedulers=schedulers, warmup=train.warmup_epochs)


def lr_factor(epoch: int, epochs: int, scheduler: str, warmup: int) -> float:
    """LR at the end of ``epoch`` as a share of the base LR, shaped like hpsearch's schedules."""
    if scheduler != "cosine":  # constant, or plateau: neither depends on the run length
        return 1.0
    if epoch <= warmup:
        return epoch / (warmup + 1)
    progress = (epoch - warmup) / max(1, epochs - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def dice_curve(
    quality: float, epochs: int, scheduler: str, warmup: int, *, learn_epochs: float = LEARN_EPOCHS
) -> list[float]:
    """Validation Dice per epoch: learning progress plus the gain of an LR that has fallen."""
    out = []
    for e in range(1, epochs + 1):
        annealed = 0.0 if e <= warmup else 1.0 - lr_factor(e, epochs, scheduler, warmup)
        out.append(quality * (1.0 - math.exp(-e / learn_epochs)) + ANNEAL_GAIN * annealed)
    return out


def new_study(spec: StudySpec) -> optuna.Study:
    assert spec.direction == "maximize", "the scripted curves are Dice curves (higher is better)"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = study_pruner(spec)  # a resource study's rungs from its plan without a budget, as a worker's
    return optuna.create_study(study_name=spec.name, direction="maximize", pruner=pruner)


class _ReportsEachEpoch:
    """The counterfactual: a trial that reports each epoch's own value, whatever the callback hands it."""

    def __init__(self, trial: optuna.Trial, curve: list[float]) -> None:
        self.trial, self.curve = trial, curve

    def report(self, value: float, step: int) -> None:
        self.trial.report(self.curve[step - 1], step)

    def should_prune(self) -> bool:
        return self.trial.should_prune()


def run_trial(study: optuna.Study, curve: list[float], *, running_best: bool = True) -> tuple[str, int]:
    """Feed ``curve`` epoch by epoch to the real ``PruningCallback``, as ``fit`` does; ``(final state, last
    epoch)``. ``running_best=False``: the same callback on a trial that reports each epoch's own value."""
    trial = study.ask()
    reporter = trial if running_best else _ReportsEachEpoch(trial, curve)
    callback = PruningCallback(reporter, "val_dice", epochs=len(curve))  # type: ignore[arg-type]
    for epoch, value in enumerate(curve, start=1):
        try:
            callback(epoch, {"val_dice": value})
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
            return "PRUNED", epoch
    study.tell(trial, callback.best)  # the objective returns the best epoch's value
    return "COMPLETE", len(curve)


def run_others(study: optuna.Study, sched: Schedules) -> list[float]:
    """Several trials that level off lower, on the study's shorter schedules (the same length where the
    length is fixed), each with every schedule the study can pick; their best Dice."""
    shorter = tuple(e for e in sched.epochs if e < max(sched.epochs)) or sched.epochs
    combos = [(e, s) for e in shorter for s in sched.schedulers]
    finals = []
    for i, quality in enumerate(OTHER_QUALITIES):
        epochs, scheduler = combos[i % len(combos)]
        curve = dice_curve(quality, epochs, scheduler, sched.warmup)
        run_trial(study, curve)
        finals.append(max(curve))
    return finals


def long_schedule(sched: Schedules) -> tuple[int, str]:
    """The longest run, annealed if the study can anneal: the schedule that starts slowest and ends best."""
    return max(sched.epochs), ("cosine" if "cosine" in sched.schedulers else sched.schedulers[0])


@pytest.mark.parametrize("name", SHIPPED)
def test_the_long_schedule_that_ends_best_is_not_pruned(name: str) -> None:
    spec = load_study_spec(name)
    sched = schedules_of(spec)
    study = new_study(spec)
    others = run_others(study, sched)
    epochs, scheduler = long_schedule(sched)
    long_curve = dice_curve(LONG_QUALITY, epochs, scheduler, sched.warmup)
    assert max(long_curve) > max(others), "the scenario needs the long trial to end best"
    outcomes = [run_trial(study, long_curve) for _ in range(REPEATS)]
    assert outcomes == [("COMPLETE", epochs)] * REPEATS, (
        f"study '{name}' ({spec.pruner.name} {spec.pruner.kwargs}) pruned the best trial "
        f"({epochs} epochs, {scheduler}): {outcomes}"
    )


@pytest.mark.parametrize("name", SHIPPED)
def test_a_clearly_bad_trial_is_pruned(name: str) -> None:
    spec = load_study_spec(name)
    sched = schedules_of(spec)
    study = new_study(spec)
    run_others(study, sched)
    epochs = max(sched.epochs)
    outcomes = [run_trial(study, [BAD_DICE] * epochs) for _ in range(REPEATS)]
    if spec.pruner.name == "none":
        assert outcomes == [("COMPLETE", epochs)] * REPEATS
    else:
        assert all(state == "PRUNED" and last < epochs for state, last in outcomes), (
            f"study '{name}' ({spec.pruner.name} {spec.pruner.kwargs}) let a flat Dice of {BAD_DICE} "
            f"run: {outcomes}"
        )


def leader_with_dips(sched: Schedules, *, dip_to: float = 0.05) -> tuple[int, list[float]]:
    """The long schedule's trial, learning fast enough to lead every trial of its length from its second
    epoch on, with a noisy validation epoch (Dice ``dip_to``) on every odd epoch from the third. Successive
    halving's rungs, ``min_resource * reduction_factor**k``, are odd epochs when both factors are odd."""
    epochs, scheduler = long_schedule(sched)
    clean = dice_curve(LONG_QUALITY, epochs, scheduler, sched.warmup, learn_epochs=1.0)
    return epochs, [dip_to if e > 2 and e % 2 == 1 else v for e, v in enumerate(clean, start=1)]


@pytest.mark.parametrize("name", SHIPPED)
def test_a_dip_does_not_prune_the_studys_best_trial(name: str) -> None:
    spec = load_study_spec(name)
    sched = schedules_of(spec)
    study = new_study(spec)
    run_others(study, sched)
    epochs, curve = leader_with_dips(sched)
    outcomes = [run_trial(study, curve) for _ in range(REPEATS)]
    assert outcomes == [("COMPLETE", epochs)] * REPEATS, f"study '{name}': {outcomes}"


def test_reporting_the_current_value_would_prune_on_a_dip() -> None:
    """The same dipping trial under the same pruner: pruned on its current value, kept on its running best.

    Successive halving compares the value reported at a rung, so a noisy epoch that lands on a rung would
    decide the trial; the running best is the quantity the objective returns, so it decides nothing new.
    """
    halving = [s for s in map(load_study_spec, SHIPPED) if s.pruner.name in HALVING]
    assert halving, "no shipped study prunes by successive halving any more; give this test one of its own"
    spec = halving[0]
    assert spec.resource is not None
    plan = default_plan(spec.resource, study_epochs(spec))
    rf, min_resource = plan.reduction_factor, plan.min_rung
    assert rf % 2 == 1 and min_resource % 2 == 1, "the rungs must be odd epochs to land on the dips"
    sched = schedules_of(spec)
    epochs, curve = leader_with_dips(sched)
    outcomes = {}
    for running_best in (True, False):
        study = new_study(spec)
        run_others(study, sched)
        outcomes[running_best] = [run_trial(study, curve, running_best=running_best) for _ in range(REPEATS)]
    assert outcomes[True] == [("COMPLETE", epochs)] * REPEATS
    assert all(state == "PRUNED" for state, _ in outcomes[False]), outcomes[False]


def test_a_trial_is_never_pruned_at_its_last_epoch() -> None:
    """The callback does not consult the pruner at the last epoch: a trial that trained to its end is
    COMPLETE (exportable, counted by the median), however it compares there."""

    class _Always:
        def __init__(self) -> None:
            self.asked: list[int] = []
            self.reported: list[int] = []

        def report(self, value: float, step: int) -> None:
            self.reported.append(step)

        def should_prune(self) -> bool:
            self.asked.append(self.reported[-1])
            return True

    trial = _Always()
    cb = PruningCallback(trial, "val_dice", epochs=1)  # type: ignore[arg-type]
    cb(1, {"val_dice": 0.1, "epoch": 1})  # the last epoch: no question, no TrialPruned
    assert trial.asked == [] and trial.reported == [1]
    cb = PruningCallback(trial, "val_dice", epochs=3)  # type: ignore[arg-type]
    with pytest.raises(optuna.TrialPruned):
        cb(1, {"val_dice": 0.1, "epoch": 1})


def test_the_median_pruner_needs_three_trials_at_the_step() -> None:
    """One finished trial must not prune everything below it alone (Optuna's default n_min_trials=1)."""
    spec = load_study_spec("loss")
    spec.pruner.kwargs.update(n_startup_trials=0, n_warmup_steps=0)
    study = new_study(spec)
    outcomes = [run_trial(study, curve) for curve in ([0.8] * 5, [0.5] * 5, [0.4] * 5, [0.3] * 5)]
    assert outcomes[:3] == [("COMPLETE", 5)] * 3  # one or two others at the step: no median yet
    assert outcomes[3] == ("PRUNED", 1)  # three others: below their median, pruned
