"""Reading a finished (or still running) study: open it, its stored spec and metric, counts, best trial.

Everything here only reads the storage, so any machine that can reach the database can use it while
workers still run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpsearch.errors import ConfigError, StorageError
from hpsearch.search import keys
from hpsearch.search.storage import make_storage, mask_url
from hpsearch.training.metric_table import DEFAULT_METRIC

STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")

# Numbers a complete trial records (objective.py), copied into summaries when present.
TRIAL_METRICS = (
    keys.BEST_VAL_DICE,
    keys.BEST_VAL_IOU,
    keys.BEST_EPOCH,
    keys.EPOCHS_RUN,
    keys.WALL_TIME_S,
    keys.TRIAL_WALL_S,
    keys.OVERHEAD_S,
    keys.TRAIN_IMG_PER_S,
    keys.DEVICE,
    keys.PEAK_MEMORY_MB,
    keys.SEED,
    keys.WORKER,
    keys.CHECKPOINT,
    keys.OUT_DIR,
)


def check_storage_exists(storage_url: str) -> None:
    """Opening a missing SQLite file would silently create an empty database; for reading, that is a typo."""
    prefix = "sqlite:///"
    if storage_url.startswith(prefix):
        path = storage_url[len(prefix) :]
        if path not in ("", ":memory:") and not Path(path).is_file():
            raise StorageError(
                f"storage '{mask_url(storage_url)}': file '{path}' does not exist; "
                "pass the --storage URL the study was run with"
            )


def load_study(storage_url: str, study_name: str | None) -> optuna.Study:
    """Open an existing study; ``study_name=None`` picks the only study in the storage.

    Raises ``StorageError`` for a storage that cannot be opened and ``ConfigError`` (listing the studies that
    exist) for an unknown name.
    """
    check_storage_exists(storage_url)
    storage = make_storage(storage_url)
    names = [s.study_name for s in storage.get_all_studies()]
    shown = mask_url(storage_url)
    listing = ", ".join(names) if names else "none"
    if study_name is None:
        if len(names) != 1:
            raise ConfigError(
                f"storage '{shown}' holds {len(names)} studies ({listing}); pass --study NAME to pick one"
            )
        study_name = names[0]
    if study_name not in names:
        raise ConfigError(
            f"no study '{study_name}' in storage '{shown}'; studies there: {listing}; pass one as --study"
        )
    return optuna.load_study(study_name=study_name, storage=storage)


def spec_dict(study: optuna.Study) -> dict[str, Any]:
    """The raw stored study spec (unvalidated, so a registry change can't block reading old results)."""
    raw = study.user_attrs.get(keys.SPEC)
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except (TypeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def study_metric(study: optuna.Study) -> str:
    """The metric the objective returns (``val_dice`` unless the stored spec says otherwise)."""
    return str(spec_dict(study).get("metric", DEFAULT_METRIC))


def state_counts(study: optuna.Study) -> dict[str, int]:
    """Number of trials per state, every state in ``STATES`` present (0 if none)."""
    counts = dict.fromkeys(STATES, 0)
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    return counts


def best_complete_trial(study: optuna.Study) -> FrozenTrial:
    """The best COMPLETE trial, or a ``ConfigError`` that says what the study holds and what to do."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        counts = state_counts(study)
        held = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no trials at all"
        raise ConfigError(
            f"study '{study.study_name}' has no COMPLETE trial ({held}); run more trials "
            "(hpsearch run, or raise the budget) or relax the pruner, then export again"
        )
    return study.best_trial


def best_exportable_trial(study: optuna.Study) -> FrozenTrial:
    """The best COMPLETE trial; with none, the trial stopped by the study's time budget that trained furthest
    (then the best value), so that a study stopped by its budget always leaves something to export (its
    ``stopped_by`` attribute says so). Else the ``ConfigError`` of ``best_complete_trial``."""
    if study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return best_complete_trial(study)
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    stopped = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
        if t.user_attrs.get(keys.STOPPED_BY) == "budget" and t.user_attrs.get(keys.BEST_VALUE) is not None
    ]
    if not stopped:
        return best_complete_trial(study)  # raises, saying what the study holds

    def rank(t: FrozenTrial) -> tuple[int, float]:
        value = float(t.user_attrs[keys.BEST_VALUE])
        return int(t.user_attrs.get(keys.EPOCHS_RUN) or 0), value if maximize else -value

    return max(stopped, key=rank)


def best_trial_summary(study: optuna.Study) -> dict[str, Any]:
    """Number, value, metric, params and recorded metrics of the best COMPLETE trial (JSON-safe)."""
    best = best_complete_trial(study)
    summary: dict[str, Any] = {
        "study": study.study_name,
        "number": best.number,
        "value": best.value,
        "metric": study_metric(study),
        "direction": study.direction.name.lower(),
        "params": dict(best.params),
        "datetime_complete": best.datetime_complete.isoformat() if best.datetime_complete else None,
    }
    for key in TRIAL_METRICS:
        summary[key] = best.user_attrs.get(key)
    summary["artifacts"] = best.user_attrs.get(keys.ARTIFACTS) or {}
    return summary
