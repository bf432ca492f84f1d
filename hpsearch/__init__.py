"""hpsearch: hyperparameter search for medical image segmentation (U-Net / CBAM U-Net on Optuna).

The public API, by stage (each name loads on first use, so ``import hpsearch`` stays light):

- data: ``discover_pairs``, ``verify_dataset``, ``split_for``, ``make_synthetic``
- models: ``create_model``
- training: ``load_config``, ``resolve_run_config``, ``fit``, ``train_from_config``, ``evaluate_checkpoint``
- search: ``load_study_spec``, ``SearchOptions``, ``open_study``, ``run_search``, ``run_worker``
- results: ``export_best``, ``write_report``, ``serve_dashboard``
- reproduce: ``hpsearch.reproduce.reproduce`` (the subpackage shares the name)

The rooms (``hpsearch.data``, ``.models``, ``.training``, ``.search``, ``.results``, ``.reproduce``) hold the
rest; ``docs/internals.md`` is the map.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "HpsearchError": ("hpsearch.errors", "HpsearchError"),
    "ConfigError": ("hpsearch.errors", "ConfigError"),
    "DataError": ("hpsearch.errors", "DataError"),
    "StorageError": ("hpsearch.errors", "StorageError"),
    "discover_pairs": ("hpsearch.data.discover", "discover_pairs"),
    "verify_dataset": ("hpsearch.data.check", "verify_dataset"),
    "split_for": ("hpsearch.data.splits", "split_for"),
    "make_synthetic": ("hpsearch.data.synth", "make_synthetic"),
    "create_model": ("hpsearch.models", "create_model"),
    "RunConfig": ("hpsearch.training.config", "RunConfig"),
    "load_config": ("hpsearch.training.config", "load_config"),
    "resolve_run_config": ("hpsearch.training.config", "resolve_run_config"),
    "fit": ("hpsearch.training.fit", "fit"),
    "FitResult": ("hpsearch.training.fit", "FitResult"),
    "train_from_config": ("hpsearch.training.runner", "train_from_config"),
    "evaluate_checkpoint": ("hpsearch.training.evaluate", "evaluate_checkpoint"),
    "load_study_spec": ("hpsearch.search.spec", "load_study_spec"),
    "SearchOptions": ("hpsearch.search.options", "SearchOptions"),
    "open_study": ("hpsearch.search.lifecycle", "open_study"),
    "run_search": ("hpsearch.search.launch", "run_search"),
    "run_study": ("hpsearch.search.launch", "run_search"),
    "run_worker": ("hpsearch.search.worker", "run_worker"),
    "export_best": ("hpsearch.results.export", "export_best"),
    "write_report": ("hpsearch.results.report", "write_report"),
    "serve_dashboard": ("hpsearch.results.dashboard", "serve_dashboard"),
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'hpsearch' has no attribute '{name}'")
    module, attr = _EXPORTS[name]
    return getattr(importlib.import_module(module), attr)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
