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

from hpsearch._lazy import lazy_exports

__version__ = "0.1.0"

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
    "train_from_config": "hpsearch.training.runner",
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

__all__ = ["__version__", *sorted(_EXPORTS)]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
