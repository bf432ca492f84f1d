"""Compatibility re-exports, removed after merge: ``studies.py`` was split into ``storage.py`` (the
connection), ``lifecycle.py`` (creating and opening studies) and ``worker.py`` (the worker loop).

Nothing here is new; import from those modules instead.
"""

from __future__ import annotations

from hpsearch.cli.options import ARTIFACTS_ENV
from hpsearch.search.keys import SPEC as SPEC_ATTR
from hpsearch.search.keys import TICKET as TICKET_ATTR
from hpsearch.search.lifecycle import count_tickets, create_or_load_study, stored_spec
from hpsearch.search.storage import (
    StorageOptions,
    artifact_dir,
    artifact_store,
    heartbeat_ages,
    make_storage,
    mask_url,
    study_exists,
)
from hpsearch.search.worker import (
    INTERRUPTED,
    BudgetSpent,
    WorkerStudy,
    WorkerSummary,
    run_trials,
    worker_study,
)

__all__ = [
    "ARTIFACTS_ENV",
    "INTERRUPTED",
    "SPEC_ATTR",
    "TICKET_ATTR",
    "BudgetSpent",
    "StorageOptions",
    "WorkerStudy",
    "WorkerSummary",
    "artifact_dir",
    "artifact_store",
    "count_tickets",
    "create_or_load_study",
    "heartbeat_ages",
    "make_storage",
    "mask_url",
    "run_trials",
    "stored_spec",
    "study_exists",
    "worker_study",
]
