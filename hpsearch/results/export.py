"""After the search: the best trial of a study as a run config that ``hpsearch train --config`` reads back.

A trial stores its fully resolved ``RunConfig`` as the ``config`` user attribute (see ``objective.py``), so
the export is that config plus a ``provenance`` section saying where it came from. The storage URL in the
provenance is masked: an exported file is meant to be shared, the database password is not.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import optuna
from optuna.trial import FrozenTrial, TrialState

import hpsearch
from hpsearch.errors import ConfigError, StorageError
from hpsearch.search.studies import SPEC_ATTR, make_storage, mask_url
from hpsearch.training.config import RunConfig, dump_config, parse_run_config

STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")

# Numbers a complete trial records (objective.py), copied into summaries when present.
_TRIAL_METRICS = (
    "best_val_dice",
    "best_val_iou",
    "best_epoch",
    "epochs_run",
    "wall_time_s",
    "trial_wall_s",
    "overhead_s",
    "train_img_per_s",
    "device",
    "peak_memory_mb",
    "seed",
    "worker",
    "checkpoint",
    "out_dir",
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
    if study_name is None:
        if len(names) != 1:
            listing = ", ".join(names) if names else "none"
            raise ConfigError(
                f"storage '{shown}' holds {len(names)} studies ({listing}); pass --study NAME to pick one"
            )
        study_name = names[0]
    if study_name not in names:
        listing = ", ".join(names) if names else "none"
        raise ConfigError(
            f"no study '{study_name}' in storage '{shown}'; studies there: {listing}; pass one as --study"
        )
    return optuna.load_study(study_name=study_name, storage=storage)


def spec_dict(study: optuna.Study) -> dict[str, Any]:
    """The raw stored study spec (unvalidated, so a registry change can't block reading old results)."""
    raw = study.user_attrs.get(SPEC_ATTR)
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except (TypeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def study_metric(study: optuna.Study) -> str:
    """The metric the objective returns (``val_dice`` unless the stored spec says otherwise)."""
    return str(spec_dict(study).get("metric", "val_dice"))


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
    for key in _TRIAL_METRICS:
        summary[key] = best.user_attrs.get(key)
    summary["artifacts"] = best.user_attrs.get("artifacts") or {}
    return summary


def best_run_config(study: optuna.Study, storage_url: str) -> RunConfig:
    """The best trial's stored config, validated, with ``provenance`` filled in."""
    best = best_complete_trial(study)
    source = f"trial {best.number} of study '{study.study_name}'"
    raw = best.user_attrs.get("config")
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source} has no stored run config (user attr 'config'); it was not run by hpsearch, "
            "so there is nothing to export"
        )
    cfg = parse_run_config({**raw, "provenance": None}, source=source)
    cfg.provenance = {
        "study": study.study_name,
        "trial": best.number,
        "value": best.value,
        "metric": study_metric(study),
        "direction": study.direction.name.lower(),
        "params": dict(best.params),
        "storage": mask_url(storage_url),
        "exported": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "hpsearch_version": study.user_attrs.get("hpsearch_version", hpsearch.__version__),
        "exported_by": hpsearch.__version__,
        "data_split_hash": study.user_attrs.get("data_split_hash"),
    }
    return cfg


def export_best(
    storage_url: str, study_name: str | None, out: Path, fmt: Literal["yaml", "json"] = "yaml"
) -> Path:
    """Write the best COMPLETE trial's run config to ``out`` (a file, or a folder to put it in).

    The file loads with ``load_config`` into the same ``RunConfig`` the trial trained with,
    plus an informational ``provenance`` section. Returns the path written.
    """
    if fmt not in ("yaml", "json"):
        raise ConfigError(f"export format '{fmt}' is not supported; expected 'yaml' or 'json'")
    study = load_study(storage_url, study_name)
    cfg = best_run_config(study, storage_url)
    out = Path(out)
    if out.is_dir():
        out = out / f"{study.study_name.replace('/', '_')}_best.{fmt}"
    return dump_config(cfg, out, fmt=fmt)
