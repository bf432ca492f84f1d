"""After the search: a Markdown + JSON report of a study, with three PNG plots.

Everything is read from the storage (trial params, intermediate values and the user attrs ``objective.py``
records), so a report can be written from any machine that can reach the database, while workers still run.
Plots use matplotlib's Agg canvas directly (no pyplot state, no display) rather than
``optuna.visualization.matplotlib``, which is experimental and warns.
"""

from __future__ import annotations

import json
import math
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import optuna
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState
from pydantic import ValidationError

from hpsearch.errors import ConfigError
from hpsearch.results.export import best_trial_summary, load_study, spec_dict, state_counts, study_metric
from hpsearch.search.space import describe_range
from hpsearch.search.spec import CategoricalParam, FloatParam, IntParam, Param, StudySpec
from hpsearch.search.studies import mask_url

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
# Fewer complete trials than this make any importance estimate noise, so the report says so instead.
MIN_IMPORTANCE_TRIALS = 3

HISTORY_PNG = "history.png"
IMPORTANCE_PNG = "importance.png"
INTERMEDIATE_PNG = "intermediate.png"


# --------------------------------------------------------------------------------------------- formatting
def format_value(v: Any) -> str:
    """A parameter value for a table: floats to 3 significant digits (1.23e-03, 0.25, 128)."""
    if v is None:
        return "—"
    if isinstance(v, bool) or not isinstance(v, float):
        return str(v)
    if not math.isfinite(v):
        return str(v)
    if v != 0 and (abs(v) < 1e-2 or abs(v) >= 1e4):
        return f"{v:.2e}"
    return f"{v:.3g}"


def format_seconds(s: float | None) -> str:
    """'45.2 s', '12m 05s', '3h 07m'."""
    if s is None or not math.isfinite(s):
        return "—"
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)}m {int(s % 60):02d}s"
    return f"{int(s // 3600)}h {int(s % 3600 // 60):02d}m"


def _num(v: Any, spec: str = ".4f", unit: str = "") -> str:
    """A number with an optional unit, or a dash when the trial did not record it."""
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
        return "—"
    return format(v, spec) + (f" {unit}" if unit else "")


def _cell(text: Any) -> str:
    """Markdown table cells must not contain a bare pipe."""
    return str(text).replace("|", "\\|")


def _json_safe(obj: Any) -> Any:
    """NaN/inf are not JSON; they become null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


# ------------------------------------------------------------------------------------------------ numbers
def trial_seconds(t: FrozenTrial) -> float:
    """Compute time of one trial: ``trial_wall_s`` as recorded, else its start-to-finish time, else 0."""
    rec = t.user_attrs.get("trial_wall_s")
    if isinstance(rec, (int, float)) and math.isfinite(rec):
        return float(rec)
    if t.datetime_start is not None and t.datetime_complete is not None:
        return max(0.0, (t.datetime_complete - t.datetime_start).total_seconds())
    return 0.0


def _curve(t: FrozenTrial) -> list[tuple[int, float]]:
    """(epoch, value) pairs reported by a trial, finite values only, in epoch order."""
    return sorted((int(s), float(v)) for s, v in t.intermediate_values.items() if math.isfinite(v))


def _seconds_until_epoch(t: FrozenTrial, epoch: int, n_epochs: int) -> tuple[float, str]:
    """Time a trial spent up to and including ``epoch``: per-epoch train+val times from its history, or a
    share of its whole time proportional to epochs when the history has no times."""
    history = t.user_attrs.get("history") or []
    rows = [h for h in history if isinstance(h, dict) and int(h.get("epoch", 0)) <= epoch]
    if rows and all("train_time_s" in h and "val_time_s" in h for h in rows):
        return sum(float(h["train_time_s"]) + float(h["val_time_s"]) for h in rows), "history"
    return trial_seconds(t) * epoch / max(n_epochs, epoch, 1), "proportional"


def _finish_order(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    done = [t for t in trials if t.state in FINISHED]
    return sorted(done, key=lambda t: (t.datetime_complete is None, t.datetime_complete or 0, t.number))


def cost_to_target(
    trials: list[FrozenTrial], thresholds: tuple[float, ...] = THRESHOLDS
) -> list[dict[str, Any]]:
    """Compute-seconds until the best-so-far metric first reached each threshold (maximize only).

    Finished trials are taken in order of completion; every earlier trial counts with its whole time, the
    trial that crosses the threshold up to the crossing epoch. Parallel workers add up: this is compute
    spent, not wall-clock time.
    """
    pending = sorted(thresholds)
    results: dict[float, dict[str, Any]] = {}
    spent = 0.0
    for t in _finish_order(trials):
        curve = _curve(t)
        if not curve and t.state == TrialState.COMPLETE and t.value is not None:
            # No per-epoch reports: the value is only known when the trial ends.
            curve = [(int(t.user_attrs.get("epochs_run") or 1), float(t.value))]
            whole = True
        else:
            whole = False
        n_epochs = curve[-1][0] if curve else 0
        for thr in list(pending):
            hit = next(((e, v) for e, v in curve if v >= thr), None)
            if hit is None:
                break  # thresholds ascend: a higher one can't be reached in this trial either
            epoch, value = hit
            part, basis = (trial_seconds(t), "trial") if whole else _seconds_until_epoch(t, epoch, n_epochs)
            results[thr] = {
                "threshold": thr,
                "reached": True,
                "compute_s": spent + part,
                "trial": t.number,
                "epoch": epoch,
                "value": value,
                "basis": basis,
            }
            pending.remove(thr)
        spent += trial_seconds(t)
    for thr in pending:
        results[thr] = {"threshold": thr, "reached": False, "compute_s": None, "trial": None, "epoch": None}
    return [results[thr] for thr in sorted(thresholds)]


def time_by_state(trials: list[FrozenTrial]) -> dict[str, Any]:
    """Trials and compute seconds per finished state, with each state's share of the total."""
    rows = {s.name: {"trials": 0, "seconds": 0.0} for s in FINISHED}
    for t in trials:
        if t.state in FINISHED:
            rows[t.state.name]["trials"] += 1
            rows[t.state.name]["seconds"] += trial_seconds(t)
    total = sum(r["seconds"] for r in rows.values())
    for r in rows.values():
        r["share"] = r["seconds"] / total if total > 0 else None
    return {"by_state": rows, "total_s": total, "pruned_share": rows["PRUNED"]["share"]}


def _spec_space(study: optuna.Study) -> dict[str, Param]:
    """The stored search space, checked against the schema only: a registry that changed since the study
    ran must not stop its report."""
    raw = spec_dict(study)
    if not raw:
        return {}
    try:
        return StudySpec.model_validate(raw).space
    except ValidationError:
        return {}


def _param_from_distribution(d: Any) -> Param | None:
    if isinstance(d, FloatDistribution):
        return FloatParam(type="float", low=d.low, high=d.high, log=d.log, step=d.step)
    if isinstance(d, IntDistribution):
        return IntParam(type="int", low=d.low, high=d.high, log=d.log, step=d.step)
    if isinstance(d, CategoricalDistribution):
        return CategoricalParam(type="categorical", choices=list(d.choices))
    return None


def parameter_rows(study: optuna.Study, best: FrozenTrial | None) -> list[dict[str, Any]]:
    """One row per search-space parameter: name, range tested, best trial's value.

    Ranges come from the stored spec; parameters only the trials know (a study resumed with --force after the
    space changed, or not created by hpsearch) get their range from Optuna's stored distributions.
    """
    space = _spec_space(study)
    dists: dict[str, Any] = {}
    for t in study.get_trials(deepcopy=False):
        for name, d in t.distributions.items():
            dists.setdefault(name, d)
    rows = []
    for name in [*space, *(n for n in dists if n not in space)]:
        param = space.get(name) or _param_from_distribution(dists[name])
        rng = describe_range(param) if param is not None else "?"
        source = "spec" if name in space else "trials"
        if best is None:
            optimal, raw = "—", None
        elif name in best.params:
            raw = best.params[name]
            optimal = format_value(raw)
        else:
            optimal, raw = "— (not used)", None  # a conditional parameter whose condition did not hold
        rows.append({"name": name, "range": rng, "optimal": optimal, "value": raw, "range_from": source})
    return rows


def build_report(study: optuna.Study, storage_url: str) -> dict[str, Any]:
    """All numbers of the report as a JSON-safe dict (also what ``report.json`` holds)."""
    trials = study.get_trials(deepcopy=False)
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best_trial = study.best_trial if complete else None
    devices = sorted({str(t.user_attrs["device"]) for t in trials if t.user_attrs.get("device")})
    data: dict[str, Any] = {
        "study": study.study_name,
        "metric": study_metric(study),
        "direction": study.direction.name.lower(),
        "storage": mask_url(storage_url),
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "hpsearch_version": study.user_attrs.get("hpsearch_version"),
        "data_split_hash": study.user_attrs.get("data_split_hash"),
        "budget_n_trials": study.user_attrs.get("budget_n_trials"),
        "counts": {**state_counts(study), "total": len(trials)},
        "parameters": parameter_rows(study, best_trial),
        "best": best_trial_summary(study) if best_trial is not None else None,
        "time": time_by_state(trials),
        "cost_to_target": {
            "devices": devices,
            "thresholds": cost_to_target(trials) if maximize else [],
            "note": None if maximize else "not applicable: the study minimizes its metric",
        },
        "top_trials": [
            {"number": t.number, "value": t.value, "params": dict(t.params)}
            for t in sorted(complete, key=lambda t: t.value or 0.0, reverse=maximize)[:5]
        ],
        "trials": [
            {
                "number": t.number,
                "state": t.state.name,
                "value": t.value,
                "best_intermediate": _best_intermediate(t, maximize),
                "epochs_run": t.user_attrs.get("epochs_run"),
                "compute_s": trial_seconds(t) if t.state in FINISHED else None,
                "params": dict(t.params),
                "reason": t.user_attrs.get("prune_reason") or t.user_attrs.get("fail_reason"),
            }
            for t in trials
        ],
    }
    return data


def _best_intermediate(t: FrozenTrial, maximize: bool) -> float | None:
    values = [v for _, v in _curve(t)]
    if not values:
        return None
    return max(values) if maximize else min(values)


# -------------------------------------------------------------------------------------------------- plots
def _new_figure(width: float, height: float) -> tuple[Figure, Any]:
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)  # attach the Agg canvas explicitly: no pyplot, no global backend switch
    return fig, fig.add_subplot()


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_history(study: optuna.Study, path: Path) -> Path:
    """Objective per trial (complete), best value before pruning (pruned, grey x) and the best-so-far line."""
    metric = study_metric(study)
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    pruned = [(t.number, _best_intermediate(t, maximize)) for t in trials if t.state == TrialState.PRUNED]
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
        xs, ys, best = [], [], None
        for t in complete:
            best = t.value if best is None else (max(best, t.value) if maximize else min(best, t.value))
            xs.append(t.number)
            ys.append(best)
        last = max(t.number for t in trials if t.state in FINISHED)
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
    if not complete and not pruned:
        ax.text(0.5, 0.5, "no finished trials yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("trial")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(metric)
    ax.set_title(f"{study.study_name}: optimisation history")
    ax.grid(alpha=0.3)
    if complete or pruned:
        ax.legend(loc="best", fontsize=8)
    return _save(fig, path)


def plot_intermediate(study: optuna.Study, path: Path) -> Path:
    """Per-epoch validation metric of every trial: complete blue, pruned grey (x where stopped), failed red,
    best bold orange."""
    metric = study_metric(study)
    trials = study.get_trials(deepcopy=False)
    best_number = study.best_trial.number if any(t.state == TrialState.COMPLETE for t in trials) else None
    fig, ax = _new_figure(8, 4.5)
    styles = {
        TrialState.COMPLETE: {"color": "tab:blue", "alpha": 0.6, "lw": 1.0},
        TrialState.PRUNED: {"color": "grey", "alpha": 0.55, "lw": 0.9},
        TrialState.FAIL: {"color": "tab:red", "alpha": 0.6, "lw": 0.9, "ls": "--"},
        TrialState.RUNNING: {"color": "tab:green", "alpha": 0.8, "lw": 1.0, "ls": ":"},
    }
    shown: set[TrialState] = set()
    for t in sorted(trials, key=lambda t: t.state == TrialState.COMPLETE):  # complete drawn on top
        curve = _curve(t)
        if not curve or t.state not in styles or t.number == best_number:
            continue
        ax.plot(
            [e for e, _ in curve],
            [v for _, v in curve],
            marker="." if len(curve) < 30 else None,
            ms=3,
            **styles[t.state],
        )
        if t.state == TrialState.PRUNED:  # where the pruner stopped it
            ax.plot(
                [curve[-1][0]], [curve[-1][1]], marker="x", ms=6, mew=1.5, color="black", ls="none", zorder=4
            )
        shown.add(t.state)
    labels = {TrialState.PRUNED: "pruned (x: where stopped)"}
    handles = [Line2D([], [], **styles[s], label=labels.get(s, s.name.lower())) for s in styles if s in shown]
    if best_number is not None:
        curve = _curve(study.best_trial)
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
    ax.set_ylabel(f"{metric} (validation)")
    if metric in ("val_dice", "val_iou"):
        ax.set_ylim(0, 1.02)
    ax.set_title(f"{study.study_name}: {metric} per epoch")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def param_importances(study: optuna.Study) -> tuple[dict[str, float] | None, str | None]:
    """Importances from optuna's PED-ANOVA evaluator (deterministic), or ``(None, why not)``."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    names = sorted({n for t in complete for n in t.params})
    if len(complete) < MIN_IMPORTANCE_TRIALS:
        return None, (
            f"not computed: {len(complete)} complete trial(s); at least {MIN_IMPORTANCE_TRIALS} are needed"
        )
    if len(names) < 2:
        which = f" ({names[0]})" if names else ""
        return None, f"not computed: the search space has {len(names)} parameter{which}, nothing to compare"
    evaluator = optuna.importance.PedAnovaImportanceEvaluator()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            imp = optuna.importance.get_param_importances(study, evaluator=evaluator)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            return None, f"not computed: {exc}"
    # Optuna warns (and returns equal or zero importances) when the trials can't separate good from bad.
    degenerate = [str(w.message) for w in caught if "importances will be equal" in str(w.message).lower()]
    if degenerate:
        return None, f"not computed: {degenerate[0]}"
    if not imp or not any(v > 0 for v in imp.values()):
        return None, "not computed: all importances are zero (the trials don't separate the parameters)"
    return {k: float(v) for k, v in imp.items()}, None


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


# ----------------------------------------------------------------------------------------------- markdown
def render_markdown(data: dict[str, Any]) -> str:
    """The report.md text for a ``build_report`` dict (plus its ``plots`` entry)."""
    metric = data["metric"]
    best = data["best"]
    out = [f"# hpsearch report: {data['study']}", ""]
    out += [
        f"- **Objective:** {data['direction']} `{metric}` (best validation value of each trial)",
        f"- **Storage:** `{data['storage']}`",
        f"- **Generated:** {data['generated']} (UTC)",
        f"- **hpsearch version:** {data['hpsearch_version'] or '—'}; "
        f"**data split:** `{str(data['data_split_hash'] or '—')[:12]}`; "
        f"**budget:** {_num(data['budget_n_trials'], 'd', 'trials')}",
        "",
        "## Hyperparameters",
        "",
        "| Hyperparameter | Range tested | Optimal value |",
        "|---|---|---|",
    ]
    out += [
        f"| `{_cell(r['name'])}` | {_cell(r['range'])} | {_cell(r['optimal'])} |" for r in data["parameters"]
    ]
    if not data["parameters"]:
        out.append("| — | — | — |")
    out.append("")
    if best is None:
        out += ["No trial has completed yet, so there is no optimal value.", ""]
    else:
        out += [
            f"Optimal values are those of trial {best['number']} ({metric} = {best['value']:.4f}); "
            "`hpsearch export` writes its full config.",
            "",
            "## Best trial",
            "",
            "| Metric | Value |",
            "|---|---|",
            f"| Trial | {best['number']} |",
            f"| Val Dice | {_num(best['best_val_dice'])} |",
            f"| Val IoU | {_num(best['best_val_iou'])} |",
            f"| Best epoch | {best['best_epoch'] if best['best_epoch'] is not None else '—'} |",
            f"| Epochs run | {best['epochs_run'] if best['epochs_run'] is not None else '—'} |",
            f"| Fit time | {format_seconds(best['wall_time_s'])} |",
            f"| Trial time (incl. overhead) | {format_seconds(best['trial_wall_s'])} |",
            f"| Throughput | {_num(best['train_img_per_s'], '.1f', 'train img/s')} |",
            f"| Device | {_cell(best['device'] or '—')} |",
            f"| Peak memory | {_num(best['peak_memory_mb'], ',.0f', 'MB')} |",
            "",
        ]
    counts = data["counts"]
    out += ["## Trials", "", "| State | Trials |", "|---|---|"]
    out += [f"| {s} | {n} |" for s, n in counts.items() if s != "total"]
    out += [f"| **total** | **{counts['total']}** |", ""]
    time = data["time"]
    out += ["## Compute time", "", "| State | Trials | Compute time | Share |", "|---|---|---|---|"]
    for state, row in time["by_state"].items():
        share = f"{row['share']:.1%}" if row["share"] is not None else "—"
        out.append(f"| {state} | {row['trials']} | {format_seconds(row['seconds'])} | {share} |")
    out.append(f"| **total** | | **{format_seconds(time['total_s'])}** | |")
    out.append("")
    if time["pruned_share"] is not None:
        out += [
            f"Pruned trials used {time['pruned_share']:.1%} of the compute. Times are each trial's own wall "
            "time (`trial_wall_s`), summed over workers.",
            "",
        ]
    ctt = data["cost_to_target"]
    devices = ", ".join(f"`{d}`" for d in ctt["devices"]) or "unknown"
    out += ["## Cost to target", ""]
    if ctt["note"]:
        out += [ctt["note"], ""]
    else:
        out += [
            f"Compute spent until the best-so-far `{metric}` first reached each target: the whole time of "
            "every trial that finished before, plus the crossing trial's epochs up to the crossing. Trials "
            f"are taken in order of completion and parallel workers add up. Device: {devices}.",
            "",
            f"| Target `{metric}` ≥ | Compute | Reached in |",
            "|---|---|---|",
        ]
        for row in ctt["thresholds"]:
            if row["reached"]:
                secs = row["compute_s"]
                raw = f" ({secs:,.0f} s)" if secs >= 60 else ""
                out.append(
                    f"| {row['threshold']:.2f} | {format_seconds(secs)}{raw} "
                    f"| trial {row['trial']}, epoch {row['epoch']} |"
                )
            else:
                out.append(f"| {row['threshold']:.2f} | not reached | — |")
        out.append("")
    plots = data.get("plots", {})
    out += [
        "## Plots",
        "",
        "### Optimisation history",
        "",
        f"![Optimisation history]({plots.get('history')})",
        "",
    ]
    out += ["### Parameter importances", ""]
    if plots.get("importance"):
        out += [f"![Parameter importances]({plots['importance']})", ""]
    else:
        out += [f"Parameter importances {plots.get('importance_note') or 'not computed'}.", ""]
    out += ["### Intermediate values", "", f"![{metric} per epoch]({plots.get('intermediate')})", ""]
    return "\n".join(out)


def write_report(storage_url: str, study_name: str | None, out_dir: Path) -> Path:
    """Write ``report.md``, ``report.json`` and the PNG plots into ``out_dir``; returns the report.md path."""
    study = load_study(storage_url, study_name)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"report folder '{out_dir}' is a file; pass a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    data = build_report(study, storage_url)
    plot_history(study, out_dir / HISTORY_PNG)
    plot_intermediate(study, out_dir / INTERMEDIATE_PNG)
    importances, note = param_importances(study)
    stale = out_dir / IMPORTANCE_PNG
    if importances is not None:
        plot_importance(study, importances, stale)
    elif stale.exists():
        stale.unlink()  # an importance plot from an earlier report would contradict the note
    data["importances"] = importances
    data["plots"] = {
        "history": HISTORY_PNG,
        "importance": IMPORTANCE_PNG if importances is not None else None,
        "importance_note": note,
        "intermediate": INTERMEDIATE_PNG,
    }
    (out_dir / "report.json").write_text(json.dumps(_json_safe(data), indent=2) + "\n")
    md = out_dir / "report.md"
    md.write_text(render_markdown(data))
    return md
