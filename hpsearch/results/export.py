"""After the search: the best trial of a study as a run config that ``hpsearch train --config`` reads back.

A trial stores its fully resolved ``RunConfig`` as the ``config`` user attribute (see ``objective.py``), so
the export is that config plus a ``provenance`` section saying where it came from. The storage URL in the
provenance is masked: an exported file is meant to be shared, the database password is not.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import optuna

from hpsearch._version import __version__
from hpsearch.errors import ConfigError
from hpsearch.results.query import best_exportable_trial, load_study, study_metric
from hpsearch.search import keys
from hpsearch.search.storage import mask_url, shown_url
from hpsearch.training.config import RunConfig, dump_config, parse_run_config


def _length_note(best: optuna.trial.FrozenTrial, cfg: RunConfig, study: optuna.Study) -> dict[str, object]:
    """For a resource study whose search ran shorter than its final length: retrain at the final length.

    With a constant learning rate the best trial's run is the start of a longer one, so training it to the
    study's final length continues that curve; the export says so (and what the search measured). A study
    with ``resource.final_schedule`` anneals that longer run instead."""
    from hpsearch.search.plan import stored_plan

    plan = stored_plan(study.user_attrs)
    searched = cfg.train.epochs
    out: dict[str, object] = {"searched_epochs": searched, "epochs_run": best.user_attrs.get(keys.EPOCHS_RUN)}
    if best.user_attrs.get(keys.STOPPED_BY) == "budget":
        out["stopped_by"] = "budget"
        out["note"] = (
            f"no trial finished before the time budget; trial {best.number} was stopped by it after "
            f"{best.user_attrs.get(keys.EPOCHS_RUN)} of {searched} epochs (the furthest any got)"
        )
    if plan is not None and plan.final > searched:
        cfg.train.epochs = plan.final
        out["final_epochs"] = plan.final
        out["length_note"] = (
            f"the search trained at most {searched} epochs ({plan.describe()}); the study's final length is "
            f"{plan.final} epochs, so this config trains {plan.final}"
        )
        schedule = plan.final_scheduler(cfg.train.scheduler, searched)
        if schedule != cfg.train.scheduler:
            # The rungs need a constant rate (epoch k must be the same point of every trial's schedule);
            # the one long final run does not, so a study may anneal it (resource.final_schedule).
            out["searched_scheduler"] = cfg.train.scheduler
            out["final_schedule"] = schedule
            out["length_note"] += (
                f", with the learning rate annealed ({schedule} schedule), not the search's constant one"
            )
            cfg.train.scheduler = schedule
    return out


def best_run_config(study: optuna.Study, storage_url: str) -> RunConfig:
    """The best trial's stored config, validated, with ``provenance`` filled in; a resource study's export
    trains at the study's final length (see ``_length_note``)."""
    best = best_exportable_trial(study)
    source = f"trial {best.number} of study '{study.study_name}'"
    raw = best.user_attrs.get(keys.CONFIG)
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source} has no stored run config (user attr '{keys.CONFIG}'); it was not run by hpsearch, "
            "so there is nothing to export"
        )
    cfg = parse_run_config({**raw, "provenance": None}, source=source)
    length = _length_note(best, cfg, study)
    cfg.provenance = {
        "study": study.study_name,
        "trial": best.number,
        "value": best.value if best.value is not None else best.user_attrs.get(keys.BEST_VALUE),
        "metric": study_metric(study),
        "direction": study.direction.name.lower(),
        "params": dict(best.params),
        "storage": mask_url(storage_url),
        "exported": datetime.now(UTC).isoformat(timespec="seconds"),
        "hpsearch_version": study.user_attrs.get(keys.VERSION, __version__),
        "exported_by": __version__,
        "data_split_hash": study.user_attrs.get(keys.DATA_SPLIT_HASH),
        **length,
    }
    return cfg


def export_best(
    storage_url: str, study_name: str | None, out: Path, fmt: Literal["yaml", "json"] = "yaml"
) -> Path:
    """Write the best trial's run config to ``out`` (a file, or a folder to put it in): the best COMPLETE
    trial, or with none the furthest trial stopped by the time budget (``best_exportable_trial``).

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
    # A SQLite file named relative to the export's folder, as dump_config names data.path.
    cfg.provenance = {**(cfg.provenance or {}), "storage": shown_url(storage_url, out.parent)}
    return dump_config(cfg, out, fmt=fmt)
