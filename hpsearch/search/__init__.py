"""The search room: study specs, the search space, samplers and pruners, the objective and its pruning
callback, the storage, the study lifecycle, the worker loop, and running a search from one command.

Names are imported on first use, so ``from hpsearch.search import keys`` stays light.
"""

from __future__ import annotations

from hpsearch._lazy import lazy_exports

_WHERE = {
    "StudySpec": ".spec",
    "load_study_spec": ".spec",
    "builtin_studies": ".spec",
    "suggest": ".space",
    "build_sampler": ".strategies",
    "build_pruner": ".strategies",
    "study_pruner": ".spec",
    "LengthPlan": ".plan",
    "simulate_search": ".simulate",
    "Objective": ".objective",
    "PruningCallback": ".objective",
    "TrialContext": ".lifecycle",
    "StorageOptions": ".storage",
    "make_storage": ".storage",
    "mask_url": ".storage",
    "artifact_store": ".storage",
    "SearchOptions": ".options",
    "parse_overrides": ".options",
    "PreparedStudy": ".lifecycle",
    "open_study": ".lifecycle",
    "stored_spec": ".lifecycle",
    "WorkerSummary": ".worker",
    "run_trials": ".worker",
    "run_worker": ".worker",
    "worker_study": ".worker",
    "SearchOutcome": ".launch",
    "run_search": ".launch",
    "StudyCost": ".cost",
    "estimate_study": ".cost",
    "prepare_search": ".cost",
    "trial_note": ".notes",
}

__all__ = sorted(_WHERE)

__getattr__, __dir__ = lazy_exports(__name__, _WHERE, globals())
