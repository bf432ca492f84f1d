"""A search replayed on synthetic learning curves: real Optuna samplers and pruners, simulated seconds.

Nothing trains. Each trial is a curve (validation Dice per epoch) and a cost per epoch; the loop asks the
sampler, reports the running best epoch by epoch as ``PruningCallback`` does (never consulting the pruner at
the trial's last epoch), stops the trial running at the deadline as ``--timeout`` does, and picks what
``hpsearch export`` would pick. A search of a hundred trials replays in well under a second, which is what
lets ``run`` predict its own search before the first trial (``hpsearch.search.cost``), lets the study's plan
size the top length to a time budget (``hpsearch.search.plan``), and lets ``benchmarks/search_sim.py``
compare search designs over many repeats.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

STOPPED_BY_BUDGET = "budget"


@dataclass(frozen=True)
class SimTrial:
    """What one simulated trial trains: its noisy curve, its length and its cost per epoch."""

    curve: Callable[[int], float]  # the validation metric observed at epoch e (1-based), noise included
    epochs: int
    s_per_epoch: float
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class SimOutcome:
    """What a simulated search did by its deadline."""

    started: int = 0  # configurations evaluated (trials that trained at least one epoch)
    complete: int = 0  # trials that ran to their full length
    pruned: int = 0  # stopped by the pruner
    stopped: int = 0  # stopped by the deadline
    elapsed_s: float = 0.0
    pick: SimTrial | None = None  # what the export would take (see ``export_pick``)
    pick_state: str | None = None


def export_pick(rows: list[tuple[str, int, float, SimTrial]]) -> tuple[SimTrial | None, str | None]:
    """``hpsearch export``'s rule on (state, epochs run, best value, trial) rows: the best complete trial;
    with none, the trial stopped by the budget that ran furthest (then the best value)."""
    complete = [r for r in rows if r[0] == "COMPLETE"]
    if complete:
        return max(complete, key=lambda r: r[2])[3], "COMPLETE"
    stopped = [r for r in rows if r[0] == STOPPED_BY_BUDGET]
    if stopped:
        return max(stopped, key=lambda r: (r[1], r[2]))[3], STOPPED_BY_BUDGET
    return None, None


def simulate_search(
    *,
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
    draw: Callable[[optuna.Trial], SimTrial],
    budget_s: float,
    trial_overhead_s: float = 0.0,
    max_trials: int | None = None,
    enough: tuple[int, int] | None = None,
    on_checkpoint: Sequence[float] = (),
    checkpoints: dict[float, SimOutcome] | None = None,
) -> SimOutcome:
    """Run trials until ``budget_s`` simulated seconds are spent (or ``max_trials`` started).

    ``enough=(complete, started)`` ends the replay once that many trials ran to their full length and that
    many started (when that is all the caller needs to know).
    ``draw`` samples a trial's parameters through the Optuna trial (so the sampler chooses) and returns what
    it trains. A trial running at the deadline stops after the epoch that crosses it, as under ``--timeout``.
    ``on_checkpoint`` times (seconds, below ``budget_s``) get a snapshot of the outcome in ``checkpoints``:
    what the export would have been had the study stopped there (for designs whose behaviour does not
    depend on the budget).
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # A fixed name: Hyperband assigns trials to brackets by a hash of the study name, so a generated one
    # would make replays with the same seeds differ.
    study = optuna.create_study(study_name="replay", direction="maximize", sampler=sampler, pruner=pruner)
    out = SimOutcome()
    rows: list[tuple[str, int, float, SimTrial]] = []
    pending = sorted(on_checkpoint)
    clock = 0.0
    while clock < budget_s and (max_trials is None or out.started < max_trials):
        if enough is not None and out.complete >= enough[0] and out.started >= enough[1]:
            break
        trial = study.ask()
        sim = draw(trial)
        clock += trial_overhead_s
        out.started += 1
        best = -math.inf
        state = "COMPLETE"
        epoch = 0
        for epoch in range(1, sim.epochs + 1):
            clock += sim.s_per_epoch
            while pending and clock >= pending[0] and checkpoints is not None:
                # The study stopped at this checkpoint: this trial is the one the deadline stops (unless this
                # was its last epoch: then it finished).
                now = "COMPLETE" if epoch == sim.epochs else STOPPED_BY_BUDGET
                snap = _snapshot(out, [*rows, (now, epoch, max(best, sim.curve(epoch)), sim)])
                checkpoints[pending.pop(0)] = snap
            best = max(best, sim.curve(epoch))
            trial.report(best, epoch)
            if epoch < sim.epochs and clock >= budget_s:
                state = STOPPED_BY_BUDGET
                break
            if epoch < sim.epochs and trial.should_prune():
                state = "PRUNED"
                break
        if state == "COMPLETE":
            study.tell(trial, best)
            out.complete += 1
        else:
            study.tell(trial, state=TrialState.PRUNED)
            out.pruned += state == "PRUNED"
            out.stopped += state == STOPPED_BY_BUDGET
        rows.append((state, epoch, best, sim))
    out.elapsed_s = clock
    out.pick, out.pick_state = export_pick(rows)
    return out


def _snapshot(out: SimOutcome, rows: list[tuple[str, int, float, SimTrial]]) -> SimOutcome:
    snap = SimOutcome(
        started=out.started,
        complete=sum(r[0] == "COMPLETE" for r in rows),
        pruned=sum(r[0] == "PRUNED" for r in rows),
        stopped=sum(r[0] == STOPPED_BY_BUDGET for r in rows),
        elapsed_s=0.0,
    )
    snap.pick, snap.pick_state = export_pick(rows)
    return snap


# ------------------------------------------------------------------------------------ generic curves
def generic_draw(
    rng: random.Random, s_per_epoch: Sequence[float], epochs: int | Sequence[int]
) -> Callable[[optuna.Trial], SimTrial]:
    """Trials with random learning curves (plateau 0.5-0.85, time constant 3-30 epochs, noise 0.01) and a
    cost per epoch drawn from ``s_per_epoch``: enough to count what a pruner and a budget let through."""

    def draw(trial: optuna.Trial) -> SimTrial:
        plateau = rng.uniform(0.5, 0.85)
        tau = math.exp(rng.uniform(math.log(3.0), math.log(30.0)))
        noise = random.Random(rng.random())
        values: dict[int, float] = {}

        def curve(e: int) -> float:
            if e not in values:
                values[e] = plateau * (1.0 - math.exp(-e / tau)) + noise.gauss(0.0, 0.01)
            return values[e]

        length = epochs if isinstance(epochs, int) else rng.choice(list(epochs))
        return SimTrial(curve=curve, epochs=length, s_per_epoch=rng.choice(list(s_per_epoch)))

    return draw


@dataclass(frozen=True)
class Prediction:
    """What a search is expected to do: medians (and the 20th-80th percentile range) over repeats."""

    configs: float
    configs_range: tuple[float, float]
    top: float  # trials that reach the top length
    top_range: tuple[float, float]
    pruned: float  # trials the pruner stops
    capped: bool  # the repeats hit ``max_trials`` (below the trial budget): the counts are lower bounds
    elapsed_s: float = 0.0  # simulated seconds until the search stopped


def _spread(values: list[float]) -> tuple[float, tuple[float, float]]:
    ordered = sorted(values)
    lo = ordered[int(0.2 * (len(ordered) - 1))]
    hi = ordered[math.ceil(0.8 * (len(ordered) - 1))]
    return statistics.median(values), (lo, hi)


def predict(
    *,
    pruner_factory: Callable[[], optuna.pruners.BasePruner],
    s_per_epoch: Sequence[float],
    epochs: int | Sequence[int],
    budget_s: float,
    trial_overhead_s: float = 0.0,
    repeats: int = 7,
    max_trials: int = 300,
    enough: tuple[int, int] | None = None,
    seed: int = 0,
) -> Prediction:
    """Replay the search ``repeats`` times on generic curves with a random sampler (the pruner does not look
    at parameters, so which ones the sampler picks hardly changes the counts)."""
    configs, top, pruned, elapsed = [], [], [], []
    capped = False
    for i in range(repeats):
        rng = random.Random(seed * 1000 + i)
        out = simulate_search(
            sampler=optuna.samplers.RandomSampler(seed=seed * 1000 + i),
            pruner=pruner_factory(),
            draw=generic_draw(rng, s_per_epoch, epochs),
            budget_s=budget_s,
            trial_overhead_s=trial_overhead_s,
            max_trials=max_trials,
            enough=enough,
        )
        capped |= out.started >= max_trials
        configs.append(float(out.started))
        top.append(float(out.complete))
        pruned.append(float(out.pruned))
        elapsed.append(out.elapsed_s)
    c, c_range = _spread(configs)
    t, t_range = _spread(top)
    return Prediction(c, c_range, t, t_range, statistics.median(pruned), capped, statistics.median(elapsed))
