"""The report's three PNG plots: optimisation history, per-epoch values, parameter importances.

Plots use matplotlib's Agg canvas directly (no pyplot state, no display) rather than
``optuna.visualization.matplotlib``, which is experimental and warns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from optuna.trial import FrozenTrial, TrialState

from hpsearch.results.query import study_metric
from hpsearch.results.report_data import FINISHED, best_intermediate, is_maximize, trial_curve
from hpsearch.training.metric_table import METRICS

# How each state's per-epoch curve is drawn; states missing here are not drawn.
CURVE_STYLES: dict[TrialState, dict[str, Any]] = {
    TrialState.COMPLETE: {"color": "tab:blue", "alpha": 0.6, "lw": 1.0},
    TrialState.PRUNED: {"color": "grey", "alpha": 0.55, "lw": 0.9},
    TrialState.FAIL: {"color": "tab:red", "alpha": 0.6, "lw": 0.9, "ls": "--"},
    TrialState.RUNNING: {"color": "tab:green", "alpha": 0.8, "lw": 1.0, "ls": ":"},
}
# Metrics bounded by [0, 1]: their axis is fixed so plots of different studies compare at a glance.
UNIT_METRICS = tuple(m.name for m in METRICS.values() if m.unit)


def _new_figure(width: float, height: float) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)  # attach the Agg canvas explicitly: no pyplot, no global backend switch
    return fig, fig.add_subplot()


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


# -------------------------------------------------------------------------------------------- history
def _best_so_far_line(ax: Axes, study: optuna.Study, complete: list[FrozenTrial], last: int) -> None:
    """The running best as a step line (carried to trial ``last``) and the best trial as a star."""
    maximize = is_maximize(study)
    xs, ys, best = [], [], None
    for t in complete:
        best = t.value if best is None else (max(best, t.value) if maximize else min(best, t.value))
        xs.append(t.number)
        ys.append(best)
    xs.append(last)  # carry the line to the last finished trial, not to unclaimed tickets
    ys.append(ys[-1])
    ax.step(xs, ys, where="post", color="tab:red", lw=1.8, zorder=4, label="best so far")
    top = study.best_trial
    ax.scatter(
        [top.number],
        [top.value],
        s=140,
        marker="*",
        color="gold",
        edgecolor="black",
        zorder=5,
        label=f"best: trial {top.number} ({top.value:.4f})",
    )


def _trial_axis(ax: Axes, trials: list[FrozenTrial]) -> None:
    """Whole trial numbers, spanning the trials that ran (at least one unit wide, so one trial is centred)."""
    ax.set_xlabel("trial")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ran = [t.number for t in trials if t.state != TrialState.WAITING]
    if ran:
        ax.set_xlim(min(ran) - 0.5, max(max(ran), min(ran) + 1) + 0.5)


def plot_history(study: optuna.Study, path: Path) -> Path:
    """Objective per trial (complete), best value before pruning (pruned, grey x) and the best-so-far line."""
    return _save(history_figure(study), path)


def history_figure(study: optuna.Study) -> Figure:
    """The figure ``plot_history`` saves."""
    maximize = is_maximize(study)
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    pruned = [(t.number, best_intermediate(t, maximize)) for t in trials if t.state == TrialState.PRUNED]
    pruned = [(n, v) for n, v in pruned if v is not None]
    fig, ax = _new_figure(8, 4.5)
    if complete:
        ax.scatter(
            [t.number for t in complete],
            [t.value for t in complete],
            s=28,
            color="tab:blue",
            zorder=3,
            label="complete",
        )
    if pruned:
        ax.scatter(
            [n for n, _ in pruned],
            [v for _, v in pruned],
            s=30,
            marker="x",
            color="grey",
            zorder=2,
            label="pruned (best before pruning)",
        )
    if complete:
        _best_so_far_line(ax, study, complete, last=max(t.number for t in trials if t.state in FINISHED))
    if complete or pruned:
        ax.legend(loc="best", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no finished trials yet", ha="center", va="center", transform=ax.transAxes)
    _trial_axis(ax, trials)
    metric = study_metric(study)
    ax.set_ylabel(f"{metric} (each trial's best epoch)")
    if metric in UNIT_METRICS:  # one point would otherwise get an axis of +-0.05 around it
        ax.set_ylim(0, 1.02)
    ax.set_title(f"{study.study_name}: optimisation history")
    ax.grid(alpha=0.3)
    return fig


# --------------------------------------------------------------------------------------- intermediate
def _draw_curves(ax: Axes, trials: list[FrozenTrial], skip: int | None) -> list[Line2D]:
    """Every trial's curve but trial ``skip`` (the best, drawn last); returns one legend handle per state."""
    shown: set[TrialState] = set()
    for t in sorted(trials, key=lambda t: t.state == TrialState.COMPLETE):  # complete drawn on top
        curve = trial_curve(t)
        if not curve or t.state not in CURVE_STYLES or t.number == skip:
            continue
        ax.plot(
            [e for e, _ in curve],
            [v for _, v in curve],
            marker="." if len(curve) < 30 else None,
            ms=3,
            **CURVE_STYLES[t.state],
        )
        if t.state == TrialState.PRUNED:  # where the pruner stopped it
            ax.plot(
                [curve[-1][0]], [curve[-1][1]], marker="x", ms=6, mew=1.5, color="black", ls="none", zorder=4
            )
        shown.add(t.state)
    labels = {TrialState.PRUNED: "pruned (x: where stopped)"}
    return [
        Line2D([], [], **style, label=labels.get(s, s.name.lower()))
        for s, style in CURVE_STYLES.items()
        if s in shown
    ]


def plot_intermediate(study: optuna.Study, path: Path) -> Path:
    """Per-epoch validation metric of every trial: complete blue, pruned grey (x where stopped), failed red,
    best bold orange."""
    return _save(intermediate_figure(study), path)


def intermediate_figure(study: optuna.Study) -> Figure:
    """The figure ``plot_intermediate`` saves."""
    metric = study_metric(study)
    trials = study.get_trials(deepcopy=False)
    best_number = study.best_trial.number if any(t.state == TrialState.COMPLETE for t in trials) else None
    fig, ax = _new_figure(8, 4.5)
    handles = _draw_curves(ax, trials, skip=best_number)
    curve = trial_curve(study.best_trial) if best_number is not None else []
    if curve:
        (line,) = ax.plot(
            [e for e, _ in curve],
            [v for _, v in curve],
            color="tab:orange",
            lw=2.4,
            marker="o",
            ms=3,
            zorder=5,
            label=f"best (trial {best_number})",
        )
        handles.append(line)
    if handles:
        ax.legend(handles=handles, loc="lower right", fontsize=8)
    else:
        ax.text(
            0.5, 0.5, "no intermediate values reported yet", ha="center", va="center", transform=ax.transAxes
        )
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    # Each trial reports its best epoch so far (what the pruner compares), so the curves only rise.
    ax.set_ylabel(f"best {metric} so far (validation)")
    if metric in UNIT_METRICS:
        ax.set_ylim(0, 1.02)
    ax.set_title(f"{study.study_name}: best {metric} so far, per epoch")
    ax.grid(alpha=0.3)
    return fig


# ----------------------------------------------------------------------------------------- importance
def plot_importance(study: optuna.Study, importances: dict[str, float], path: Path) -> Path:
    """Horizontal bars, most important on top."""
    items = sorted(importances.items(), key=lambda kv: kv[1])
    fig, ax = _new_figure(8, 1.2 + 0.45 * len(items))
    bars = ax.barh([k for k, _ in items], [v for _, v in items], color="tab:blue")
    ax.bar_label(bars, labels=[f"{v:.2f}" for _, v in items], padding=3, fontsize=8)
    ax.set_xlim(0, max(v for _, v in items) * 1.15)
    ax.set_xlabel("importance (PED-ANOVA, normalised)")
    ax.set_title(f"{study.study_name}: parameter importances")
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)
