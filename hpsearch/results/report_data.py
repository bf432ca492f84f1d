"""The report's numbers: everything ``report.json`` holds, computed from the storage alone.

Trial params, intermediate values and the user attributes ``objective.py`` records are all there is, so a
report can be computed from any machine that can reach the database, while workers still run.
"""

from __future__ import annotations

import math
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState
from pydantic import ValidationError

from hpsearch.results.query import best_trial_summary, spec_dict, state_counts, study_metric
from hpsearch.search import keys
from hpsearch.search.space import describe_range
from hpsearch.search.spec import CategoricalParam, FloatParam, IntParam, Param, StudySpec
from hpsearch.search.storage import mask_url, shown_url

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
# Fewer complete trials than this make any importance estimate noise, so the report says so instead.
MIN_IMPORTANCE_TRIALS = 3
TOP_TRIALS = 5


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


def json_safe(obj: Any) -> Any:
    """NaN/inf are not JSON; they become null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


# ------------------------------------------------------------------------------------------ one trial
def is_maximize(study: optuna.Study) -> bool:
    """Whether the study maximizes its (single) objective."""
    return study.direction == optuna.study.StudyDirection.MAXIMIZE


def trial_seconds(t: FrozenTrial) -> float:
    """Compute time of one trial: ``trial_wall_s`` as recorded, else its start-to-finish time, else 0."""
    rec = t.user_attrs.get(keys.TRIAL_WALL_S)
    if isinstance(rec, (int, float)) and math.isfinite(rec):
        return float(rec)
    if t.datetime_start is not None and t.datetime_complete is not None:
        return max(0.0, (t.datetime_complete - t.datetime_start).total_seconds())
    return 0.0


def trial_curve(t: FrozenTrial) -> list[tuple[int, float]]:
    """(epoch, value) pairs reported by a trial, finite values only, in epoch order."""
    return sorted((int(s), float(v)) for s, v in t.intermediate_values.items() if math.isfinite(v))


def best_intermediate(t: FrozenTrial, maximize: bool) -> float | None:
    """The best value a trial reported on the way (for a pruned trial: how good it got before pruning)."""
    values = [v for _, v in trial_curve(t)]
    if not values:
        return None
    return max(values) if maximize else min(values)


def _seconds_until_epoch(t: FrozenTrial, epoch: int, n_epochs: int) -> tuple[float, str]:
    """Time a trial spent up to and including ``epoch``: per-epoch train+val times from its history, or a
    share of its whole time proportional to epochs when the history has no times."""
    history = t.user_attrs.get(keys.HISTORY) or []
    rows = [h for h in history if isinstance(h, dict) and int(h.get("epoch", 0)) <= epoch]
    if rows and all("train_time_s" in h and "val_time_s" in h for h in rows):
        return sum(float(h["train_time_s"]) + float(h["val_time_s"]) for h in rows), "history"
    return trial_seconds(t) * epoch / max(n_epochs, epoch, 1), "proportional"


# ------------------------------------------------------------------------------------------ compute time
def _finish_order(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    done = [t for t in trials if t.state in FINISHED]
    return sorted(done, key=lambda t: (t.datetime_complete is None, t.datetime_complete or 0, t.number))


def _crossing_curve(t: FrozenTrial) -> tuple[list[tuple[int, float]], bool]:
    """The curve to look for crossings in, and whether it stands for the whole trial (no epoch reports)."""
    curve = trial_curve(t)
    if not curve and t.state == TrialState.COMPLETE and t.value is not None:
        # No per-epoch reports: the value is only known when the trial ends.
        return [(int(t.user_attrs.get(keys.EPOCHS_RUN) or 1), float(t.value))], True
    return curve, False


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
        curve, whole = _crossing_curve(t)
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


# ------------------------------------------------------------------------------------------ parameters
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


def _optimal(name: str, best: FrozenTrial | None) -> tuple[str, Any]:
    """The table text and raw value of one parameter in the best trial."""
    if best is None:
        return "—", None
    if name in best.params:
        return format_value(best.params[name]), best.params[name]
    return "— (not used)", None  # a conditional parameter whose condition did not hold


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
        optimal, raw = _optimal(name, best)
        rows.append(
            {
                "name": name,
                "range": describe_range(param) if param is not None else "?",
                "optimal": optimal,
                "value": raw,
                "range_from": "spec" if name in space else "trials",
            }
        )
    return rows


def epochs_row(study: optuna.Study, best: FrozenTrial | None) -> dict[str, Any] | None:
    """The training length of a resource study as a table row: the lengths tried (the rungs and the top),
    and the best epoch of the best trial that ran to the top, flagged when it is the last one (the curve
    was still rising, so the study's final length is worth training). None for other studies."""
    from hpsearch.search.plan import stored_plan

    plan = stored_plan(study.user_attrs)
    if plan is None:
        return None
    tried = ", ".join(str(e) for e in [*plan.rungs(), plan.top])
    row: dict[str, Any] = {
        "name": "train.epochs",
        "range": f"{tried} (successive-halving rungs; top {plan.top} from {plan.source}"
        + (f"; final length {plan.final})" if plan.final > plan.top else ")"),
        "optimal": "— (no trial reached the top)",
        "value": None,
        "range_from": "plan",
        "final_epochs": plan.final,
    }
    if best is None:
        return row
    epoch = best.user_attrs.get(keys.BEST_EPOCH)
    ran = best.user_attrs.get(keys.EPOCHS_RUN) or plan.top
    if epoch is None:
        return row
    row["value"] = int(epoch)
    still = int(epoch) >= int(ran)
    text = f"{epoch} of {ran}" + (" (the last: still improving)" if still else "")
    if plan.final > plan.top:
        text += f"; the export trains {plan.final} (the study's final length)"
        searched = ((best.user_attrs.get(keys.CONFIG) or {}).get("train") or {}).get("scheduler", "none")
        schedule = plan.final_scheduler(searched, plan.top)
        if schedule != searched:
            text += f" with a {schedule} schedule"
    row["optimal"] = text
    row["still_improving"] = still
    return row


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


# ------------------------------------------------------------------------------------------ the report
def _trial_row(t: FrozenTrial, maximize: bool) -> dict[str, Any]:
    return {
        "number": t.number,
        "state": t.state.name,
        "value": t.value,
        "best_intermediate": best_intermediate(t, maximize),
        "epochs_run": t.user_attrs.get(keys.EPOCHS_RUN),
        "compute_s": trial_seconds(t) if t.state in FINISHED else None,
        "params": dict(t.params),
        "reason": t.user_attrs.get(keys.PRUNE_REASON) or t.user_attrs.get(keys.FAIL_REASON),
    }


def _cost_section(study: optuna.Study, trials: list[FrozenTrial]) -> dict[str, Any]:
    maximize = is_maximize(study)
    return {
        "devices": sorted({str(t.user_attrs[keys.DEVICE]) for t in trials if t.user_attrs.get(keys.DEVICE)}),
        "thresholds": cost_to_target(trials) if maximize else [],
        "note": None if maximize else "not applicable: the study minimizes its metric",
    }


def _hardware(best: FrozenTrial | None, trials: list[FrozenTrial]) -> dict[str, Any] | None:
    """Where the trials ran: the best trial's, else the latest trial's that recorded its hardware when it
    started (a study with no finished trial still names it)."""
    started = sorted((t for t in trials if t.user_attrs.get(keys.HARDWARE)), key=lambda t: t.number)
    source = best if best is not None else (started[-1] if started else None)
    if source is None:
        return None
    manifest = source.user_attrs.get(keys.MANIFEST) or {}
    found = manifest.get("hardware") or source.user_attrs.get(keys.HARDWARE) or {}
    return {"device": source.user_attrs.get(keys.DEVICE), **found}


def _best_record(study: optuna.Study, best_trial: FrozenTrial | None, base: Path | None) -> Any:
    if best_trial is None:
        return None
    best = best_trial_summary(study)
    return best if base is None else _portable_best(best, base)


def _portable_best(best: dict[str, Any], base: Path) -> dict[str, Any]:
    """The best trial's summary with its files named relative to the report's folder."""
    from hpsearch.data.io import portable_path

    return {
        **best,
        **{k: portable_path(best[k], base) for k in (keys.CHECKPOINT, keys.OUT_DIR) if best.get(k)},
    }


def build_report(study: optuna.Study, storage_url: str, base: Path | None = None) -> dict[str, Any]:
    """All numbers of the report as a JSON-safe dict (also what ``report.json`` holds).

    With ``base`` (the report's folder), files and a SQLite storage are named relative to it.
    """
    trials = study.get_trials(deepcopy=False)
    maximize = is_maximize(study)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best_trial = study.best_trial if complete else None
    top = sorted(complete, key=lambda t: t.value or 0.0, reverse=maximize)[:TOP_TRIALS]
    return {
        "study": study.study_name,
        "metric": study_metric(study),
        "direction": study.direction.name.lower(),
        "storage": mask_url(storage_url) if base is None else shown_url(storage_url, base),
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "hpsearch_version": study.user_attrs.get(keys.VERSION),
        # Studies made before scales existed trained at the configured (full) sizes.
        "scale": study.user_attrs.get(keys.SCALE, "full"),
        "hardware": _hardware(best_trial, trials),
        "data_split_hash": study.user_attrs.get(keys.DATA_SPLIT_HASH),
        "budget_n_trials": study.user_attrs.get(keys.BUDGET_N_TRIALS),
        "counts": {**state_counts(study), "total": len(trials)},
        "parameters": [*parameter_rows(study, best_trial), *filter(None, [epochs_row(study, best_trial)])],
        "best": _best_record(study, best_trial, base),
        "time": time_by_state(trials),
        "cost_to_target": _cost_section(study, trials),
        "top_trials": [{"number": t.number, "value": t.value, "params": dict(t.params)} for t in top],
        "trials": [_trial_row(t, maximize) for t in trials],
    }
