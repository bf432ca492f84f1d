"""Compatibility re-exports, removed after merge: ``service.py`` was split into ``options.py``
(``SearchOptions``, ``--set`` parsing), ``lifecycle.py`` (``open_study``, which replaces both
``prepare_study`` and ``join_study``), ``worker.py`` (``run_worker``) and ``launch.py`` (local worker
processes, ``run_search``, the resume hint).

Nothing here is new; import from those modules instead.
"""

from __future__ import annotations

from hpsearch.search.launch import resume_hint, spawn_workers, wait_workers
from hpsearch.search.lifecycle import SYNTH_N, PreparedStudy, resolve_study_data, synthetic_data_dir
from hpsearch.search.lifecycle import open_study as prepare_study
from hpsearch.search.options import SearchOptions, parse_overrides
from hpsearch.search.worker import run_worker

__all__ = [
    "SYNTH_N",
    "PreparedStudy",
    "SearchOptions",
    "parse_overrides",
    "prepare_study",
    "resolve_study_data",
    "resume_hint",
    "run_worker",
    "spawn_workers",
    "synthetic_data_dir",
    "wait_workers",
]
