"""Search designs compared at equal budget on synthetic learning curves (real Optuna samplers and pruners).

    python benchmarks/search_sim.py                      # 20 repeats, 1 h and 8 h of simulated time
    python benchmarks/search_sim.py --repeats 5 --out o  # quicker; also writes search_sim.json / .md in o/

Nothing trains: each trial of the ``lr_batch`` space (learning rate, batch size, optimizer; constant learning
rate) is a synthetic validation-Dice curve ``plateau * (1 - exp(-epoch / tau)) + noise`` from a fixed
landscape (``truth``), and costs the seconds an epoch of that batch size takes at the laptop scale on this
project's 2-core CPU (a 25-epoch trial about 7.3 minutes). The replay is ``hpsearch.search.simulate``: it
reports the running best every epoch, never asks the pruner at a trial's last epoch, stops the trial
running at the deadline, and picks what ``hpsearch export`` would pick. Designs:

old     the previous ``lr_batch``: TPE (8 start-up trials), ``train.epochs`` sampled from 25/50/100, median
        pruner (4 start-up trials, 5 warm-up epochs, Optuna's one trial at the step).
new     the current ``lr_batch`` (its study file's sampler: TPE, 5 start-up trials), successive halving
        over epochs with the top length and rungs sized to the budget by
        ``hpsearch.search.plan.budget_plan`` (as ``--timeout`` does).
hyperband  the new design with Optuna's Hyperband pruner over the same rungs and top length.
random  random configurations at the new design's top length, no pruner.
grid    the report's grid, lr {1e-4, 1e-3, 1e-2} x batch {4, 8, 16} x {adam, sgd} x epochs {25, 50, 100}, in a
        random order, no pruner.

"best true" is the noise-free Dice at 100 epochs (the length the export is retrained at) of the configuration
each design would export, as a share of the best in the space is not needed: the best in the space is printed.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hpsearch.search.plan import budget_plan  # noqa: E402
from hpsearch.search.simulate import SimOutcome, SimTrial, simulate_search  # noqa: E402
from hpsearch.search.spec import load_study_spec, study_pruner  # noqa: E402
from hpsearch.search.strategies import build_pruner, build_sampler  # noqa: E402

# Seconds per epoch by batch size at the laptop scale on the 2-core host (docs/results/laptop: a 25-epoch
# trial at batch 4 about 7.3 min; larger batches a little faster per image on a CPU).
S_PER_EPOCH = {4: 17.5, 8: 16.0, 16: 15.5}
TRIAL_OVERHEAD_S = 3.0
FINAL_EPOCHS = 100
HOUR = 3600.0
LR_RANGE = (1e-4, 1e-2)


def truth(lr: float, batch: int, optimizer: str) -> tuple[float, float, float]:
    """(plateau, tau in epochs, noise sd) of a configuration: Adam best near lr 6e-4, SGD wants the top of
    the range; larger batches end a little lower and learn more slowly per epoch (fewer steps); beyond its
    best learning rate a run gets noisy."""
    x = math.log10(lr)
    best_x, peak, width, tau0 = (-3.2, 0.88, 0.6, 6.0) if optimizer == "adam" else (-1.7, 0.84, 0.5, 10.0)
    plateau = peak - 0.08 * ((x - best_x) / width) ** 2 - 0.012 * math.log2(batch / 4)
    tau = min(400.0, max(2.0, tau0 * 10 ** (0.5 * (best_x - x)) * (batch / 4) ** 0.7))
    noise = 0.01 + 0.015 * max(0.0, x - best_x)
    return plateau, tau, noise


def true_value(params: dict[str, Any], epochs: int = FINAL_EPOCHS) -> float:
    """Noise-free Dice after ``epochs`` epochs (the best epoch of a rising curve is its last)."""
    plateau, tau, _ = truth(params["lr"], params["batch"], params["optimizer"])
    return plateau * (1.0 - math.exp(-epochs / tau))


def best_in_space() -> float:
    """The best true value over a fine grid of the space."""
    lrs = [10 ** (-4 + 2 * i / 400) for i in range(401)]
    return max(true_value({"lr": lr, "batch": b, "optimizer": o}) for lr in lrs for b in S_PER_EPOCH
               for o in ("adam", "sgd"))  # fmt: skip


def _trial(params: dict[str, Any], epochs: int, rng: random.Random) -> SimTrial:
    plateau, tau, noise = truth(params["lr"], params["batch"], params["optimizer"])
    gen = random.Random(rng.random())
    seen: dict[int, float] = {}

    def curve(e: int) -> float:
        if e not in seen:
            seen[e] = min(1.0, max(0.0, plateau * (1.0 - math.exp(-e / tau)) + gen.gauss(0.0, noise)))
        return seen[e]

    return SimTrial(curve=curve, epochs=epochs, s_per_epoch=S_PER_EPOCH[params["batch"]], params=params)


def sampled(rng: random.Random, epochs: int | None) -> Callable[[optuna.Trial], SimTrial]:
    """Trials whose parameters the sampler chooses (``epochs`` None: the length is sampled too)."""

    def draw(trial: optuna.Trial) -> SimTrial:
        params = {
            "lr": trial.suggest_float("lr", *LR_RANGE, log=True),
            "batch": trial.suggest_categorical("batch", [4, 8, 16]),
            "optimizer": trial.suggest_categorical("optimizer", ["adam", "sgd"]),
        }
        length = epochs if epochs is not None else trial.suggest_categorical("epochs", [25, 50, 100])
        return _trial(params, length, rng)

    return draw


def gridded(rng: random.Random) -> Callable[[optuna.Trial], SimTrial]:
    def draw(trial: optuna.Trial) -> SimTrial:
        params = {
            "lr": trial.suggest_categorical("lr", [1e-4, 1e-3, 1e-2]),
            "batch": trial.suggest_categorical("batch", [4, 8, 16]),
            "optimizer": trial.suggest_categorical("optimizer", ["adam", "sgd"]),
        }
        return _trial(params, trial.suggest_categorical("epochs", [25, 50, 100]), rng)

    return draw


GRID = {"lr": [1e-4, 1e-3, 1e-2], "batch": [4, 8, 16], "optimizer": ["adam", "sgd"], "epochs": [25, 50, 100]}


def new_plan(budget_s: float) -> Any:
    """The plan ``hpsearch run --study lr_batch --timeout budget_s`` makes at these epoch costs."""
    spec = load_study_spec("lr_batch")
    assert spec.resource is not None
    return budget_plan(
        spec.resource,
        pruner_name=spec.pruner.name,
        pruner_kwargs=spec.pruner.kwargs,
        study_epochs=FINAL_EPOCHS,
        budget_s=budget_s,
        s_per_epoch=list(S_PER_EPOCH.values()),
        trial_overhead_s=TRIAL_OVERHEAD_S,
    )


def run_design(design: str, budget_s: float, seed: int, checkpoints: tuple[float, ...] = ()) -> dict:
    """One repeat of one design; {budget seconds: SimOutcome} (the budget and any earlier checkpoints)."""
    rng = random.Random(seed)
    snaps: dict[float, SimOutcome] = {}
    tpe = optuna.samplers.TPESampler(seed=seed, n_startup_trials=8)
    if design == "old":
        kw: dict[str, Any] = {"sampler": tpe, "draw": sampled(rng, None), "pruner":
                              optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=5)}  # fmt: skip
    elif design == "new":
        plan = new_plan(budget_s)
        spec = load_study_spec("lr_batch")
        sampler = build_sampler(spec.sampler.name, seed, spec.sampler.kwargs)
        kw = {"sampler": sampler, "draw": sampled(rng, plan.top), "pruner": study_pruner(spec, plan)}
    elif design == "hyperband":
        plan = new_plan(budget_s)
        spec = load_study_spec("lr_batch")
        sampler = build_sampler(spec.sampler.name, seed, spec.sampler.kwargs)
        kw = {"sampler": sampler, "draw": sampled(rng, plan.top),
              "pruner": build_pruner("hyperband", plan.pruner_kwargs("hyperband"))}  # fmt: skip
    elif design == "random":
        top = new_plan(budget_s).top
        kw = {"sampler": optuna.samplers.RandomSampler(seed=seed), "draw": sampled(rng, top),
              "pruner": build_pruner("none", {})}  # fmt: skip
    elif design == "grid":
        kw = {"sampler": optuna.samplers.GridSampler(GRID, seed=seed), "draw": gridded(rng),
              "pruner": build_pruner("none", {})}  # fmt: skip
    else:
        raise ValueError(f"unknown design '{design}'")
    out = simulate_search(budget_s=budget_s, trial_overhead_s=TRIAL_OVERHEAD_S, on_checkpoint=checkpoints,
                          checkpoints=snaps, **kw)  # fmt: skip
    return {**snaps, budget_s: out}


DESIGNS = ("old", "new", "hyperband", "random", "grid")


def compare(repeats: int, hours: tuple[float, ...], designs: tuple[str, ...] = DESIGNS) -> dict[str, Any]:
    """Every design at every budget, ``repeats`` times; per (design, hours): mean/sd of the exported
    configuration's true value, mean configurations evaluated and trials that ran to their full length."""
    rows: dict[str, dict[str, list[float]]] = {}
    for design in designs:
        # The new design and random search size their length to the budget: one run per budget. The old
        # design and the grid do not: one run to the longest budget, read at the shorter ones as well.
        runs = [(h,) for h in hours] if design in ("new", "hyperband", "random") else [tuple(sorted(hours))]
        for group in runs:
            top = max(group) * HOUR
            for rep in range(repeats):
                outs = run_design(design, top, seed=rep, checkpoints=tuple(h * HOUR for h in group[:-1]))
                for h in group:
                    o = outs[h * HOUR]
                    row = rows.setdefault(f"{design}@{h:g}h", {"true": [], "configs": [], "full": []})
                    row["true"].append(true_value(o.pick.params) if o.pick else 0.0)
                    row["configs"].append(o.started)
                    row["full"].append(o.complete)
    summary = {}
    for key, row in rows.items():
        summary[key] = {
            "true_mean": statistics.mean(row["true"]),
            "true_sd": statistics.stdev(row["true"]) if len(row["true"]) > 1 else 0.0,
            "configs_mean": statistics.mean(row["configs"]),
            "full_mean": statistics.mean(row["full"]),
            "repeats": len(row["true"]),
        }
    return summary


def markdown(summary: dict[str, Any], hours: tuple[float, ...], optimum: float) -> str:
    head = "| design | " + " | ".join(f"best true @{h:g} h | configs @{h:g} h | full length @{h:g} h"
                                     for h in hours) + " |"  # fmt: skip
    lines = [head, "|---|" + "---|" * (3 * len(hours))]
    for design in DESIGNS:
        cells = []
        for h in hours:
            s = summary.get(f"{design}@{h:g}h")
            if s is None:
                cells += ["—"] * 3
                continue
            cells += [f"{s['true_mean']:.3f} ± {s['true_sd']:.3f}", f"{s['configs_mean']:.1f}",
                      f"{s['full_mean']:.1f}"]  # fmt: skip
        lines.append(f"| {design} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"Best true value in the space: {optimum:.3f}. Top length of the new design: "
                 + ", ".join(f"{new_plan(h * HOUR).top} epochs at {h:g} h" for h in hours) + ".")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--hours", type=float, nargs="+", default=[1.0, 8.0])
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    hours = tuple(args.hours)
    t0 = time.perf_counter()
    summary = compare(args.repeats, hours)
    text = markdown(summary, hours, best_in_space())
    print(text)
    print(f"\n({args.repeats} repeats; {time.perf_counter() - t0:.0f} s of real time)")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "search_sim.json").write_text(json.dumps(summary, indent=2) + "\n")
        (args.out / "search_sim.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
