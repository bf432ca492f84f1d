"""Storage, study lifecycle and the worker loop.

Optuna's RDB storage is the distributed engine: SQLite for one machine, PostgreSQL for many. The study's
spec (space, sampler, pruner, data split hash, package version) is stored as study user attributes so that
any worker can rebuild the sampler and pruner, and a resume can check nothing changed underneath it.

The budget is counted in *tickets*: creating a study with ``n_trials=N`` enqueues N WAITING trials, and a
worker only ever runs a trial it could claim from that queue (claiming is atomic in the RDB storage). So N
workers together run exactly N trials, never N plus a few that started in a race.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

import hpsearch
from hpsearch.errors import ConfigError, StorageError
from hpsearch.strategies import build_pruner, build_sampler
from hpsearch.study_spec import StudySpec, parse_study

DEFAULT_STORAGE = "sqlite:///hpsearch.db"
STORAGE_ENV = "HPSEARCH_STORAGE"
ARTIFACTS_ENV = "HPSEARCH_ARTIFACTS"
TICKET_ATTR = "hpsearch_ticket"
SPEC_ATTR = "hpsearch_spec"


def mask_url(url: str) -> str:
    """The storage URL with any password replaced by ***."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # a URL too broken to parse: still never echo a secret
        if "@" in url and "://" in url:
            scheme, rest = url.split("://", 1)
            return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
        return url


def _sqlite_path(url: str) -> Path | None:
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///") :]
    return None if path in ("", ":memory:") else Path(path)


@dataclass(frozen=True)
class StorageOptions:
    """Heartbeat settings: a worker killed mid-trial is detected after ``grace_period`` seconds."""

    heartbeat_interval: int = 30
    grace_period: int = 90
    max_retry: int = 2


def make_storage(url: str, options: StorageOptions = StorageOptions()) -> RDBStorage:
    """Open an RDB storage with small pools, pre-ping, heartbeats and (SQLite) WAL + busy timeout."""
    shown = mask_url(url)
    if "://" not in url:
        raise StorageError(
            f"storage URL '{shown}' is not a URL; expected e.g. sqlite:///hpsearch.db or "
            "postgresql+psycopg://user:password@host:5432/db"
        )
    engine_kwargs: dict[str, Any]
    sqlite_file = _sqlite_path(url)
    if url.startswith("sqlite"):
        if sqlite_file is not None:
            if not sqlite_file.parent.exists():
                raise StorageError(
                    f"storage '{shown}': folder '{sqlite_file.parent}' does not exist; create it first"
                )
            # WAL lets readers (dashboard, other workers) proceed while one writer commits; the mode is
            # persistent in the file, so setting it once here is enough.
            with sqlite3.connect(sqlite_file, timeout=60) as con:
                con.execute("PRAGMA journal_mode=WAL")
        # The busy timeout makes a writer wait for the lock instead of failing with "database is locked".
        engine_kwargs = {"connect_args": {"timeout": 60}}
    else:
        # Each worker holds at most pool_size + max_overflow connections; pre-ping replaces connections that
        # died (e.g. a Postgres restart) instead of failing the next query.
        engine_kwargs = {"pool_size": 2, "max_overflow": 2, "pool_pre_ping": True, "pool_recycle": 600}
    try:
        with warnings.catch_warnings():
            # Heartbeats and the retry callback are marked experimental by Optuna; they are the documented way
            # to recover from crashed workers, and the version is pinned.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=options.heartbeat_interval,
                grace_period=options.grace_period,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=options.max_retry),
            )
    except ModuleNotFoundError as exc:
        raise StorageError(f"storage '{shown}': database driver missing ({exc.name}); install it") from None
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        first = first.replace(url, shown)
        raise StorageError(
            f"cannot open storage '{shown}': {first}; "
            "check the URL, that the server is running, and the credentials"
        ) from None


def artifact_dir(url: str, explicit: str | Path | None = None) -> Path:
    """``--artifacts`` > ``HPSEARCH_ARTIFACTS`` > beside the SQLite file > ./hpsearch-artifacts."""
    chosen = explicit or os.environ.get(ARTIFACTS_ENV)
    if chosen:
        return Path(chosen)
    sqlite_file = _sqlite_path(url)
    if sqlite_file is not None:
        return sqlite_file.with_name(sqlite_file.stem + "-artifacts")
    return Path("hpsearch-artifacts")


def artifact_store(url: str, explicit: str | Path | None = None) -> Any:
    """A FileSystemArtifactStore next to the storage (shared by workers and the dashboard)."""
    from optuna.artifacts import FileSystemArtifactStore

    path = artifact_dir(url, explicit)
    path.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(path))


def study_exists(storage: RDBStorage, name: str) -> bool:
    """Whether a study of that name is in the storage."""
    return any(s.study_name == name for s in storage.get_all_studies())


def _spec_payload(spec: StudySpec) -> str:
    return spec.model_dump_json()


def stored_spec(study: optuna.Study) -> StudySpec:
    """Rebuild the StudySpec saved with a study."""
    raw = study.user_attrs.get(SPEC_ATTR)
    if raw is None:
        raise ConfigError(
            f"study '{study.study_name}' was not created by hpsearch (no stored spec); "
            "pass --study-name with a new name"
        )
    return parse_study(json.loads(raw), source=f"stored spec of study '{study.study_name}'")


def count_tickets(study: optuna.Study) -> int:
    """Budget tickets ever issued for this study (retries of crashed trials are not tickets)."""
    return sum(1 for t in study.get_trials(deepcopy=False) if t.user_attrs.get(TICKET_ATTR))


def _issue_tickets(study: optuna.Study, spec: StudySpec, n_total: int) -> int:
    have = count_tickets(study)
    for i in range(have, n_total):
        params = spec.enqueue[i] if i < len(spec.enqueue) else {}
        study.enqueue_trial(params, user_attrs={TICKET_ATTR: True}, skip_if_exists=False)
    return max(0, n_total - have)


def create_or_load_study(
    spec: StudySpec,
    storage: RDBStorage,
    *,
    study_name: str | None = None,
    split_hash: str,
    n_trials: int | None = None,
    force: bool = False,
) -> tuple[optuna.Study, bool]:
    """Create the study (storing its spec) or resume it, checking space and data are unchanged.

    Returns ``(study, created)``. ``n_trials`` (or the spec's budget) sets the study's total number of trials;
    a resume with a larger number tops the budget up.
    """
    name = study_name or spec.name
    pruner = build_pruner(spec.pruner.name, spec.pruner.kwargs)
    sampler = build_sampler(spec.sampler.name, spec.sampler.seed, spec.sampler.kwargs)
    created = not study_exists(storage, name)
    if created:
        study = optuna.create_study(
            storage=storage, study_name=name, direction=spec.direction, sampler=sampler, pruner=pruner
        )
        study.set_user_attr(SPEC_ATTR, _spec_payload(spec))
        study.set_user_attr("spec_fingerprint", spec.fingerprint())
        study.set_user_attr("data_split_hash", split_hash)
        study.set_user_attr("hpsearch_version", hpsearch.__version__)
    else:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
        problems = []
        if study.user_attrs.get("spec_fingerprint") != spec.fingerprint():
            problems.append("the search space, fixed settings, sampler or pruner changed")
        if study.user_attrs.get("data_split_hash") != split_hash:
            problems.append(
                f"the data split changed (stored {str(study.user_attrs.get('data_split_hash'))[:12]}, "
                f"now {split_hash[:12]})"
            )
        if problems and not force:
            raise ConfigError(
                f"cannot resume study '{name}': {'; '.join(problems)}; use --study-name NEW to start a new "
                "study, or --force to resume anyway"
            )
        if problems:
            study.set_user_attr(SPEC_ATTR, _spec_payload(spec))
            study.set_user_attr("spec_fingerprint", spec.fingerprint())
            study.set_user_attr("data_split_hash", split_hash)
    budget = n_trials if n_trials is not None else spec.budget.n_trials
    if budget is not None:
        study.set_user_attr("budget_n_trials", max(budget, int(study.user_attrs.get("budget_n_trials", 0))))
        _issue_tickets(study, spec, budget)
    return study, created


class BudgetSpent(Exception):
    """No WAITING ticket left: the study's budget is used up."""


class _WorkerStudy(optuna.Study):
    """A Study handle for one worker that remembers the trial it claimed last.

    When ``budgeted``, ``ask`` only claims enqueued tickets and never creates a trial beyond the budget. It
    uses ``Study._pop_waiting_trial_id``, the same atomic claim that ``Study.ask`` uses (optuna<6 pinned).
    """

    budgeted: bool = True
    last_trial_id: int | None = None

    def ask(self, fixed_distributions: dict | None = None) -> optuna.Trial:
        if not self.budgeted:
            trial = super().ask(fixed_distributions)
            self.last_trial_id = trial._trial_id
            return trial
        self._thread_local.cached_all_trials = None
        trial_id = self._pop_waiting_trial_id()
        if trial_id is None:
            raise BudgetSpent()
        self.last_trial_id = trial_id
        return optuna.Trial(self, trial_id)


@dataclass
class WorkerSummary:
    """What one worker did."""

    trials: list[int] = field(default_factory=list)
    states: dict[str, int] = field(default_factory=dict)
    interrupted: bool = False
    wall_time_s: float = 0.0


def worker_study(
    study_name: str, storage: RDBStorage, spec: StudySpec, *, seed_offset: int, budgeted: bool
) -> _WorkerStudy:
    """A study handle for one worker with its own sampler seed stream, so workers don't repeat each other."""
    sampler = build_sampler(spec.sampler.name, spec.sampler.seed + 7919 * seed_offset, spec.sampler.kwargs)
    pruner = build_pruner(spec.pruner.name, spec.pruner.kwargs)
    study = _WorkerStudy(study_name=study_name, storage=storage, sampler=sampler, pruner=pruner)
    study.budgeted = budgeted
    return study


def run_trials(
    study: _WorkerStudy,
    objective: Callable[[optuna.Trial], float],
    *,
    max_trials: int | None = None,
    timeout: float | None = None,
    on_trial_end: Callable[[optuna.trial.FrozenTrial], None] | None = None,
) -> WorkerSummary:
    """Run trials one at a time until the budget, ``max_trials`` or ``timeout`` is spent.

    Trial failures are caught by Optuna (FAIL with a reason) and the loop goes on. Ctrl-C marks the current
    trial FAIL (never a zombie RUNNING trial), puts a replacement ticket back, and stops.
    """
    if not study.budgeted and max_trials is None and timeout is None:
        raise ConfigError("a study without a budget (n_trials) needs --n-trials or --timeout")
    summary = WorkerSummary()
    t0 = time.monotonic()

    def record(_: optuna.Study, frozen: optuna.trial.FrozenTrial) -> None:
        summary.trials.append(frozen.number)
        summary.states[frozen.state.name] = summary.states.get(frozen.state.name, 0) + 1
        if on_trial_end is not None:
            on_trial_end(frozen)

    while max_trials is None or len(summary.trials) < max_trials:
        if timeout is not None and time.monotonic() - t0 >= timeout:
            break
        study.last_trial_id = None
        try:
            study.optimize(objective, n_trials=1, catch=(Exception,), callbacks=[record])
        except BudgetSpent:
            break
        except KeyboardInterrupt:
            summary.interrupted = True
            _abandon(study)
            break
    summary.wall_time_s = time.monotonic() - t0
    return summary


def _abandon(study: _WorkerStudy) -> None:
    """After Ctrl-C: the trial must not stay RUNNING, and its budget ticket goes back to the queue."""
    tid = study.last_trial_id
    if tid is None:
        return
    storage = study._storage
    trial = storage.get_trial(tid)
    if trial.state == TrialState.RUNNING:
        storage.set_trial_state_values(tid, state=TrialState.FAIL)
    storage.set_trial_user_attr(tid, "fail_reason", "interrupted (Ctrl-C)")
    if trial.user_attrs.get(TICKET_ATTR):
        study.enqueue_trial(trial.params if study.budgeted else {}, user_attrs={TICKET_ATTR: True})
