"""The search room: study specs, the search space, samplers and pruners, the objective and its pruning
callback, the storage, the study lifecycle, the worker loop, and running a search from one command.

The package re-exports nothing (importing it loads no module, so ``from hpsearch.search import keys`` stays
light): import each name from its module.

- ``spec.py``: ``StudySpec``, ``load_study_spec``, ``builtin_studies``, ``study_pruner``, ``study_epochs``
- ``space.py``: ``suggest``, the only sampling code
- ``strategies.py``: ``build_sampler``, ``build_pruner`` (the registries; imports nothing of the search room)
- ``plan.py``: ``LengthPlan``, ``ResourceSpec``
- ``simulate.py``: ``simulate_search``, searches replayed on synthetic curves
- ``options.py``: ``SearchOptions``, ``parse_overrides``
- ``storage.py``: ``make_storage``, ``StorageOptions``, ``mask_url``, ``artifact_store``
- ``lifecycle.py``: ``open_study``, ``PreparedStudy``, ``stored_spec``, ``TrialContext``, ``Event``
- ``worker.py``: ``run_worker``, ``run_trials``, ``worker_study``
- ``objective.py``: ``Objective``, ``PruningCallback``
- ``launch.py``: ``run_search``, ``SearchOutcome``
- ``cost.py``: ``prepare_search``, ``estimate_study``, ``StudyCost``
- ``notes.py``: ``trial_note``, the dashboard note
- ``live.py``: the live table
- ``keys.py``: every study and trial attribute key
"""
