"""hpsearch: hyperparameter search for medical image segmentation (U-Net / CBAM U-Net on Optuna).

The public API, by stage (each name loads on first use, so ``import hpsearch`` stays light):

- data: ``discover_pairs``, ``verify_dataset``, ``split_for``, ``make_synthetic``
- models: ``create_model``
- training: ``load_config``, ``resolve_run_config``, ``fit``, ``train_from_config``, ``evaluate_checkpoint``
- search: ``load_study_spec``, ``SearchOptions``, ``open_study``, ``run_search``, ``run_worker``
- results: ``export_best``, ``write_report``, ``serve_dashboard``
- reproduce: ``hpsearch.reproduce.reproduce`` (the subpackage shares the name)

The rooms (``hpsearch.data``, ``.models``, ``.training``, ``.search``, ``.results``, ``.reproduce``) hold the
rest, each name imported from its module (``from hpsearch.training.config import RunConfig``);
``docs/internals.md`` is the map.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from hpsearch._version import __version__

if TYPE_CHECKING:
    # What a type checker sees: the real names with their types (at run time ``__getattr__`` loads them).
    from hpsearch.data.check import verify_dataset
    from hpsearch.data.discover import discover_pairs
    from hpsearch.data.splits import split_for
    from hpsearch.data.synth import make_synthetic
    from hpsearch.errors import ConfigError, DataError, HpsearchError, OutputError, StorageError
    from hpsearch.models import create_model
    from hpsearch.results.dashboard import serve_dashboard
    from hpsearch.results.export import export_best
    from hpsearch.results.report import write_report
    from hpsearch.search.launch import run_search
    from hpsearch.search.launch import run_search as run_study
    from hpsearch.search.lifecycle import open_study
    from hpsearch.search.options import SearchOptions
    from hpsearch.search.spec import load_study_spec
    from hpsearch.search.worker import run_worker
    from hpsearch.training.config import RunConfig, load_config, resolve_run_config
    from hpsearch.training.evaluate import evaluate_checkpoint
    from hpsearch.training.loop import FitResult, fit
    from hpsearch.training.session import train_from_config

# Each public name -> its module (``module:attr`` for an alias). The CLI imports this package for every
# command, ``--help`` included, so a name's module (torch, albumentations, matplotlib, optuna-dashboard)
# loads only when the name is first used.
_EXPORTS = {
    "HpsearchError": "hpsearch.errors",
    "ConfigError": "hpsearch.errors",
    "DataError": "hpsearch.errors",
    "StorageError": "hpsearch.errors",
    "OutputError": "hpsearch.errors",
    "discover_pairs": "hpsearch.data.discover",
    "verify_dataset": "hpsearch.data.check",
    "split_for": "hpsearch.data.splits",
    "make_synthetic": "hpsearch.data.synth",
    "create_model": "hpsearch.models",
    "RunConfig": "hpsearch.training.config",
    "load_config": "hpsearch.training.config",
    "resolve_run_config": "hpsearch.training.config",
    "fit": "hpsearch.training.loop",
    "FitResult": "hpsearch.training.loop",
    "train_from_config": "hpsearch.training.session",
    "evaluate_checkpoint": "hpsearch.training.evaluate",
    "load_study_spec": "hpsearch.search.spec",
    "SearchOptions": "hpsearch.search.options",
    "open_study": "hpsearch.search.lifecycle",
    "run_search": "hpsearch.search.launch",
    "run_study": "hpsearch.search.launch:run_search",
    "run_worker": "hpsearch.search.worker",
    "export_best": "hpsearch.results.export",
    "write_report": "hpsearch.results.report",
    "serve_dashboard": "hpsearch.results.dashboard",
}

# Spelled out (not built from _EXPORTS) so that a type checker and a linter read it.
__all__ = [
    "__version__",
    "ConfigError",
    "DataError",
    "FitResult",
    "HpsearchError",
    "OutputError",
    "RunConfig",
    "SearchOptions",
    "StorageError",
    "create_model",
    "discover_pairs",
    "evaluate_checkpoint",
    "export_best",
    "fit",
    "load_config",
    "load_study_spec",
    "make_synthetic",
    "open_study",
    "resolve_run_config",
    "run_search",
    "run_study",
    "run_worker",
    "serve_dashboard",
    "split_for",
    "train_from_config",
    "verify_dataset",
    "write_report",
]


def __getattr__(name: str) -> Any:
    """Load a public name's module on first use (PEP 562); any other name is an ``AttributeError``."""
    if name not in _EXPORTS:
        raise AttributeError(f"module '{__name__}' has no attribute '{name}'")
    module, _, attr = _EXPORTS[name].partition(":")
    return getattr(importlib.import_module(module), attr or name)


def __dir__() -> list[str]:
    """The package's own names and every public one, loaded or not."""
    return sorted(set(globals()) | set(_EXPORTS))
