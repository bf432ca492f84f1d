"""Storage, study lifecycle and the worker loop.

Optuna's RDB storage is the distributed engine: SQLite for one machine, PostgreSQL for many. The study's
spec (space, sampler, pruner, data split hash, package version) is stored as study user attributes so that
any worker can rebuild the sampler and pruner, and a resume can check nothing changed underneath it.

The budget is counted in *tickets*: creating a study with ``n_trials=N`` enqueues N WAITING trials, and a
worker only ever runs a trial it could claim from that queue (claiming is atomic in the RDB storage). So N
workers together run exactly N trials, never N plus a few that started in a race.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import sqlite3
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.exc
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

import hpsearch
from hpsearch.errors import ConfigError, StorageError
from hpsearch.search.spec import StudySpec, parse_study
from hpsearch.search.strategies import build_pruner, build_sampler

DEFAULT_STORAGE = "sqlite:///hpsearch.db"
STORAGE_ENV = "HPSEARCH_STORAGE"
ARTIFACTS_ENV = "HPSEARCH_ARTIFACTS"
TICKET_ATTR = "hpsearch_ticket"
SPEC_ATTR = "hpsearch_spec"
INTERRUPTED = "interrupted (Ctrl-C)"
# What a dropped database connection raises through Optuna's RDB storage.
_STORAGE_ERRORS = (optuna.exceptions.StorageInternalError, sqlalchemy.exc.OperationalError)


def mask_url(url: str) -> str:
    """The storage URL with any password replaced by ***."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # a URL too broken to parse: still never echo a secret
        if "@" in url:
            scheme, sep, rest = url.rpartition("://")
            return f"{scheme}{sep}***@{rest.rsplit('@', 1)[1]}"
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
    reconnect_window: float = 120.0  # seconds a worker waits for a restarting database server


def _is_disconnect(exc: BaseException | None) -> bool:
    """Whether SQLAlchemy saw the connection die under ``exc`` (Optuna wraps it in StorageInternalError)."""
    while exc is not None:
        if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
            return True
        exc = exc.__cause__
    return False


def _retry_on_disconnect(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run a storage call once more when its connection died mid-call (e.g. the server restarted).

    The dead connection is discarded and the retry gets a fresh one (waiting for the server, see
    _wait_for_server_on_reconnect). A transaction cut off before its commit was rolled back, so running it
    again is safe; only a connection lost during the commit itself is ambiguous, a far smaller window.
    """

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except _STORAGE_ERRORS as exc:
            if not _is_disconnect(exc):
                raise
            return method(self, *args, **kwargs)

    return call


class _Storage(RDBStorage):
    """RDBStorage that rides out a database restart: failed heartbeats are skipped, and the calls a worker
    makes are retried once on a fresh connection when theirs died."""

    def record_heartbeat(self, trial_id: int) -> None:
        # Optuna's heartbeat thread has no error handling: one failed write would end it, and the trial,
        # though still training, would be failed as stale by the next worker. Skip this beat instead.
        try:
            super().record_heartbeat(trial_id)
        except Exception:  # any storage error: the next beat tries again
            pass


for _name in (
    "get_trial",
    "get_all_trials",
    "get_n_trials",
    "get_best_trial",
    "get_all_studies",
    "get_study_id_from_name",
    "get_study_name_from_id",
    "get_study_directions",
    "get_study_user_attrs",
    "get_study_system_attrs",
    "get_trial_id_from_study_id_trial_number",
    "get_trial_number_from_id",
    "get_trial_param",
    "_get_stale_trial_ids",
    "set_trial_param",
    "set_trial_state_values",
    "set_trial_intermediate_value",
    "set_trial_user_attr",
    "set_trial_system_attr",
    "set_study_user_attr",
    "set_study_system_attr",
):
    setattr(_Storage, _name, _retry_on_disconnect(getattr(RDBStorage, _name)))


def _wait_for_server_on_reconnect(engine: Any, window_s: float) -> None:
    """Once the storage is open, a failed (re)connect waits for the server for up to ``window_s`` seconds.

    Pre-ping replaces pooled connections that a server restart killed, but if the server is still down the
    new connection fails at once and the worker dies. Retrying the connect rides out a restart or failover.
    Only the initial open (make_storage) fails fast, so a wrong URL or a server that is not there still
    gives one clear error at once.
    """
    from sqlalchemy import event

    @event.listens_for(engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        deadline = time.monotonic() + window_s
        delay = 0.5
        while True:
            try:
                return dialect.connect(*cargs, **cparams)
            except dialect.loaded_dbapi.OperationalError:
                if time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(2 * delay, 5.0)


def _serialise_sqlite_transactions(engine: Any) -> None:
    """Make every SQLite transaction take the write lock at BEGIN (SQLAlchemy's pysqlite recipe).

    Python's sqlite3 driver only opens a transaction at the first write, so Optuna's read-check-write steps
    (claiming a WAITING trial, failing a stale one) read outside any transaction, and two worker processes
    could both claim the same trial. With ``BEGIN IMMEDIATE`` the check and the write are atomic; the busy
    timeout makes the other workers wait for the (short) transaction instead of failing.
    """
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _no_implicit_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections opened before the listeners existed must not be reused


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
        for attempt in range(5):
            try:
                with warnings.catch_warnings():
                    # Heartbeats and the retry callback are marked experimental by Optuna; they are the
                    # documented way to recover from crashed workers, and the version is pinned.
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    storage = _Storage(
                        url,
                        engine_kwargs=engine_kwargs,
                        heartbeat_interval=options.heartbeat_interval,
                        grace_period=options.grace_period,
                        heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                            max_retry=options.max_retry
                        ),
                    )
                break
            except Exception as exc:
                # Workers started together on an empty database all create Optuna's tables at once; the
                # losers see "already exists" / "duplicate key". The tables are there now: open again.
                text = str(exc).lower()
                if attempt == 4 or not ("already exists" in text or "duplicate key" in text):
                    raise
                time.sleep(0.2 + random.random())
        if sqlite_file is not None:  # a file several processes share (an in-memory database has one user)
            _serialise_sqlite_transactions(storage.engine)
        elif not url.startswith("sqlite"):
            _wait_for_server_on_reconnect(storage.engine, options.reconnect_window)
        return storage
    except ModuleNotFoundError as exc:
        raise StorageError(f"storage '{shown}': database driver missing ({exc.name}); install it") from None
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        first = first.replace(url, shown)
        scheme = url.split("://", 1)[0]
        hint = "check the URL, that the server is running, and the credentials"
        if scheme in ("postgres", "postgresql", "postgresql+psycopg2"):
            # SQLAlchemy knows no 'postgres://' and reads 'postgresql://' as psycopg2, which is not installed.
            hint = "for PostgreSQL write postgresql+psycopg://USER:PASSWORD@HOST:5432/DB (psycopg 3)"
        raise StorageError(f"cannot open storage '{shown}': {first}; {hint}") from None


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
    """Budget tickets ever issued for this study (retries of crashed trials are not tickets).

    A retry (heartbeat retry of a crashed trial, or the replacement of an interrupted one) copies the ticket
    attribute but carries the system attribute ``failed_trial``: it re-runs a ticket, it is not a new one.
    """
    return sum(
        1
        for t in study.get_trials(deepcopy=False)
        if t.user_attrs.get(TICKET_ATTR) and "failed_trial" not in t.system_attrs
    )


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
    create_only: bool = False,
) -> tuple[optuna.Study, bool]:
    """Create the study (storing its spec) or resume it, checking space and data are unchanged.

    Returns ``(study, created)``. ``n_trials`` (or the spec's budget) sets the study's total number of trials;
    a resume with a larger number tops the budget up. With ``create_only`` an existing study raises
    ``DuplicatedStudyError`` instead (a worker joins it; only its creator issues the tickets).
    """
    name = study_name or spec.name
    pruner = build_pruner(spec.pruner.name, spec.pruner.kwargs)
    sampler = build_sampler(spec.sampler.name, spec.sampler.seed, spec.sampler.kwargs)
    created = not study_exists(storage, name)
    if create_only and not created:
        raise optuna.exceptions.DuplicatedStudyError(f"study '{name}' already exists")
    if created:
        study = optuna.create_study(
            storage=storage, study_name=name, direction=spec.direction, sampler=sampler, pruner=pruner
        )
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
    if created:
        # Stored last: a worker joining a study created a moment ago waits for the spec (join_study), and then
        # finds the data hash, the budget and the tickets already in place.
        study.set_user_attr(SPEC_ATTR, _spec_payload(spec))
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


_STARTED = (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


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
    """A study handle for one worker with its own sampler seed stream, so workers don't repeat each other.

    The seed is the spec's seed + 7919 * worker index, plus a term for the trials the study already ran: a
    resumed study or a restarted worker (same index) would otherwise replay the same random start-up points.
    A fresh study's seeds are unchanged by it.
    """
    study_id = storage.get_study_id_from_name(study_name)
    started = len(storage.get_all_trials(study_id, deepcopy=False, states=_STARTED))
    seed = (spec.sampler.seed + 7919 * seed_offset + 104729 * started) % 2**32  # numpy takes < 2**32
    sampler = build_sampler(spec.sampler.name, seed, spec.sampler.kwargs)
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
    trial FAIL (never a zombie RUNNING trial), puts a replacement ticket back, and stops. A storage call that
    fails in Optuna's own bookkeeping (claiming or telling a trial while the database restarts) does the same
    to that trial and goes on; three such failures in a row end the worker with a StorageError. When the
    budget is spent, the worker still checks that no RUNNING trial has silently died before it leaves
    (``_await_silent_trials``).
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

    def guarded(trial: optuna.Trial) -> float:
        try:
            return objective(trial)
        except KeyboardInterrupt:
            # Say why while the trial is still RUNNING: Optuna marks it FAIL right after, and a finished
            # trial's attributes can no longer be written.
            with contextlib.suppress(Exception):
                trial.set_user_attr("fail_reason", INTERRUPTED)
            raise

    storage_errors = 0
    while max_trials is None or len(summary.trials) < max_trials:
        if timeout is not None and time.monotonic() - t0 >= timeout:
            break
        study.last_trial_id = None
        try:
            study.optimize(guarded, n_trials=1, catch=(Exception,), callbacks=[record])
            storage_errors = 0
        except BudgetSpent:
            # A trial whose worker died shortly before the budget ran out is not stale yet; leaving now
            # would strand it RUNNING until some later worker came by. Wait for it to go stale and re-run it.
            if _await_silent_trials(study):
                continue
            break
        except KeyboardInterrupt:
            summary.interrupted = True
            _abandon(study)
            break
        except _STORAGE_ERRORS as exc:
            # The connection died mid-call (server restart, failover, network). Without this the worker would
            # exit and leave the trial it was claiming RUNNING for good (it had no heartbeat yet, so it never
            # goes stale). The next call reconnects: make_storage waits for the server to come back.
            storage_errors += 1
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            _abandon(study, reason=f"storage error: {first[:200]}")
            if storage_errors >= 3:
                raise StorageError(f"the storage keeps failing: {first}") from None
    summary.wall_time_s = time.monotonic() - t0
    return summary


def heartbeat_ages(storage: Any, study_id: int) -> dict[int, float]:
    """Seconds since the last heartbeat of each RUNNING trial that has one (the database's clock)."""
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    backend = getattr(storage, "_backend", storage)  # optuna may wrap RDBStorage in a cache
    if not isinstance(backend, RDBStorage):
        return {}
    with _create_scoped_session(backend.scoped_session) as session:
        now = session.execute(sqlalchemy.func.now()).scalar()
        rows = (
            session.query(models.TrialModel.trial_id, models.TrialHeartbeatModel.heartbeat)
            .join(models.TrialHeartbeatModel, models.TrialModel.heartbeats)
            .filter(models.TrialModel.study_id == study_id, models.TrialModel.state == TrialState.RUNNING)
            .all()
        )
    if now is None:
        return {}
    now = now.replace(tzinfo=None)  # Postgres answers timezone-aware, SQLite naive (as optuna does)
    return {tid: (now - beat.replace(tzinfo=None)).total_seconds() for tid, beat in rows}


def _await_silent_trials(study: _WorkerStudy) -> bool:
    """Before leaving a spent study, make sure no RUNNING trial is silently dead; True once a re-run waits.

    Every RUNNING trial with a heartbeat is watched until it beats again (its worker is alive: leave it
    alone) or finishes, or goes stale: failing it runs the retry callback, which enqueues the same
    parameters as a WAITING trial for this worker to claim. So a worker that finds the budget spent waits
    at most one heartbeat interval behind live trials, and at most the grace period behind a dead one.
    """
    storage = study._storage
    backend = getattr(storage, "_backend", storage)
    interval = getattr(backend, "heartbeat_interval", None)
    if not interval:
        return False
    watch: dict[int, float] = {}  # trial id -> age at the first look
    settled: set[int] = set()
    t0 = time.monotonic()
    while True:
        try:
            ages = heartbeat_ages(storage, study._study_id)
        except _STORAGE_ERRORS:
            return False
        waited = time.monotonic() - t0
        for tid, first_age in list(watch.items()):
            # Gone from RUNNING (finished or failed), or a beat newer than the one seen first: settled.
            # The 2 s slack covers SQLite's one-second timestamps (both ends of an age are rounded).
            if tid not in ages or ages[tid] < first_age + waited - 2.0:
                settled.add(tid)
                del watch[tid]
        for tid, age in ages.items():
            if tid not in settled and tid not in watch:
                watch[tid] = age - waited
        if not watch:
            return False
        with warnings.catch_warnings():  # experimental since optuna 2.9; the version is pinned
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        if storage.get_all_trials(study._study_id, deepcopy=False, states=(TrialState.WAITING,)):
            return True
        time.sleep(min(1.0, interval / 4))


def _abandon(study: _WorkerStudy, reason: str = INTERRUPTED) -> None:
    """After Ctrl-C (or a storage error outside the objective): the trial must not stay RUNNING, and its
    budget ticket goes back to the queue as a re-run of the same parameters."""
    tid = study.last_trial_id
    if tid is None:
        return
    storage = study._storage
    trial = storage.get_trial(tid)
    if trial.state == TrialState.RUNNING:  # stopped outside the objective (e.g. while claiming or telling)
        storage.set_trial_user_attr(tid, "fail_reason", reason)
        storage.set_trial_state_values(tid, state=TrialState.FAIL)
        trial = storage.get_trial(tid)
    if trial.state != TrialState.FAIL or trial.user_attrs.get("fail_reason") != reason:
        return  # it finished before the interrupt: its ticket is used
    if trial.user_attrs.get(TICKET_ATTR):
        # Re-run the same parameters, marked like a heartbeat retry so that count_tickets sees no new ticket.
        study.add_trial(
            optuna.trial.create_trial(
                state=TrialState.WAITING,
                params=trial.params,
                distributions=trial.distributions,
                user_attrs={TICKET_ATTR: True},
                system_attrs={"failed_trial": trial.system_attrs.get("failed_trial", trial.number)},
            )
        )
