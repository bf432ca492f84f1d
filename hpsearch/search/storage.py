"""The Optuna storage: open it (SQLite or PostgreSQL), ride out a database restart, and find the artifacts.

Optuna's RDB storage is the distributed engine: SQLite for one machine, PostgreSQL for many. Everything here
is about the connection; what is stored in it (studies, tickets) is ``lifecycle.py``'s business.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import random
import shutil
import sqlite3
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import optuna
import sqlalchemy.exc
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from hpsearch.errors import StorageError
from hpsearch.training.outputs import atomic_output, describe_cause, output_error

# What a dropped database connection raises through Optuna's RDB storage.
STORAGE_ERRORS = (optuna.exceptions.StorageInternalError, sqlalchemy.exc.OperationalError)
# A fixed key for PostgreSQL's advisory lock around opening a storage (any constant bigint would do).
_SCHEMA_LOCK_KEY = 0x68707365617263  # "hpsearc"
_RACE_SIGNS = ("already exists", "duplicate key", "unique constraint", "alembic_version")
_EXAMPLE_URLS = "sqlite:///hpsearch.db or postgresql+psycopg://user:password@host:5432/db"


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


def shown_url(url: str, base: str | Path) -> str:
    """The storage URL as a written record shows it: password masked, a SQLite file named relative to
    ``base`` (the record's folder) so that the record carries no machine's folders."""
    path = sqlite_path(url)
    if path is None:
        return mask_url(url)
    from hpsearch.data.io import portable_path

    return f"sqlite:///{portable_path(path, base)}"


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL; None for other databases and for an in-memory SQLite."""
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
        except STORAGE_ERRORS as exc:
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

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        """As Optuna's, but claiming a WAITING trial (-> RUNNING) also writes its first heartbeat, in the
        same transaction.

        Optuna's first heartbeat comes later, from a thread started once the trial object is built (a few
        storage calls, slow under load). A worker killed in between left a RUNNING trial with no heartbeat,
        which is never stale, so its ticket was never retried (the soak benchmark hit this once in 4 kills).
        """
        if state != TrialState.RUNNING or values is not None or not self.heartbeat_interval:
            return super().set_trial_state_values(trial_id, state, values)
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session

        try:
            with _create_scoped_session(self.scoped_session) as session:
                trial = models.TrialModel.find_or_raise_by_id(trial_id, session, for_update=True)
                self.check_trial_is_updatable(trial_id, trial.state)
                if trial.state != TrialState.WAITING:
                    return False
                trial.state = TrialState.RUNNING
                trial.datetime_start = datetime.now()
                session.add(models.TrialHeartbeatModel(trial_id=trial_id))
        except sqlalchemy.exc.IntegrityError:
            return False
        return True


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
    setattr(_Storage, _name, _retry_on_disconnect(getattr(_Storage, _name)))


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


def _engine_kwargs(url: str) -> dict[str, Any]:
    """Pool settings per database; for a SQLite file, also switch it to WAL."""
    if not url.startswith("sqlite"):
        # Each worker holds at most pool_size + max_overflow connections; pre-ping replaces connections that
        # died (e.g. a Postgres restart) instead of failing the next query.
        return {"pool_size": 2, "max_overflow": 2, "pool_pre_ping": True, "pool_recycle": 600}
    path = sqlite_path(url)
    if path is not None:
        # WAL lets readers (dashboard, other workers) proceed while one writer commits; the mode is
        # persistent in the file, so setting it once here is enough.
        new = not path.exists()
        try:
            with sqlite3.connect(path, timeout=60) as con:
                con.execute("PRAGMA journal_mode=WAL")
        except sqlite3.Error as exc:  # "unable to open database file", "disk I/O error": say which and why
            if new:  # leave no empty database file behind on a full disk
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)
            raise StorageError(
                f"storage '{mask_url(url)}': cannot open '{path}': {describe_cause(exc, path)}; the file's "
                "folder must be writable (SQLite adds -wal and -shm files beside it) and have free space"
            ) from None
    # The busy timeout makes a writer wait for the lock instead of failing with "database is locked".
    return {"connect_args": {"timeout": 60}}


@contextlib.contextmanager
def _schema_lock(url: str) -> Iterator[None]:
    """Held while a process opens the storage, so that workers started together on a new database create
    Optuna's tables once: the others wait here and then find the tables (and the schema version) in place.

    SQLite: an exclusive ``flock`` on the database's folder (no lock file is left behind). PostgreSQL: a
    session advisory lock. Other databases: none (the retry in ``_open_rdb`` still covers them).
    """
    path = sqlite_path(url)
    if path is not None:
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock
        return
    if not url.startswith("postgresql"):
        yield
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as con:
            con.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})
            try:
                yield
            finally:
                con.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _SCHEMA_LOCK_KEY})
    finally:
        engine.dispose()


def _open_rdb(url: str, engine_kwargs: dict[str, Any], options: StorageOptions) -> RDBStorage:
    """``_Storage(url)``, retried should a race to create the tables slip past the schema lock."""
    for attempt in range(5):
        try:
            with warnings.catch_warnings():
                # Heartbeats and the retry callback are marked experimental by Optuna; they are the
                # documented way to recover from crashed workers, and the version is pinned.
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return _Storage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=options.heartbeat_interval,
                    grace_period=options.grace_period,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                        max_retry=options.max_retry
                    ),
                )
        except Exception as exc:
            # The losers of a race see "already exists", "duplicate key" (PostgreSQL) or "UNIQUE constraint
            # failed: alembic_version" (SQLite). The tables are there now: open again.
            text = str(exc).lower()
            if attempt == 4 or not any(sign in text for sign in _RACE_SIGNS):
                raise
            time.sleep(0.2 + random.random())
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _open_error(url: str, exc: Exception) -> StorageError:
    """One line for a storage that would not open: the first line of the cause, the password masked."""
    shown = mask_url(url)
    scheme = url.split("://", 1)[0]
    postgres = scheme in ("postgres", "postgresql", "postgresql+psycopg2")
    if postgres:
        # SQLAlchemy knows no 'postgres://' and reads 'postgresql://' as psycopg2 before 2.1 (psycopg 3
        # after): the driver hpsearch installs is psycopg 3, so say how to name it, whatever the version.
        hint = "for PostgreSQL write postgresql+psycopg://USER:PASSWORD@HOST:5432/DB (psycopg 3)"
    else:
        hint = "check the URL, that the server is running, and the credentials"
    if isinstance(exc, ModuleNotFoundError):
        fix = hint if postgres else "install it"
        return StorageError(f"storage '{shown}': database driver missing ({exc.name}); {fix}")
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    first = first.replace(url, shown)
    return StorageError(f"cannot open storage '{shown}'{_server_named(url, first)}: {first}; {hint}")


def _server_named(url: str, cause: str) -> str:
    """`` (server HOST port PORT)`` when the cause does not name them: the driver's wording of a refused
    connection depends on its libpq (older ones leave out the port), and the operator needs both."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        return ""
    if parsed.host is None or f"port {parsed.port}" in cause:
        return ""
    return f" (server {parsed.host} port {parsed.port or 'default'})"


def make_storage(url: str, options: StorageOptions = StorageOptions()) -> RDBStorage:
    """Open an RDB storage with small pools, pre-ping, heartbeats and (SQLite) WAL + busy timeout."""
    if "://" not in url:
        raise StorageError(f"storage URL '{mask_url(url)}' is not a URL; expected e.g. {_EXAMPLE_URLS}")
    path = sqlite_path(url)
    if path is not None and not path.parent.exists():
        raise StorageError(
            f"storage '{mask_url(url)}': folder '{path.parent}' does not exist; create it first"
        )
    try:
        # Under the lock: switching a new SQLite file to WAL races too ("database is locked").
        with _schema_lock(url):
            storage = _open_rdb(url, _engine_kwargs(url), options)
    except StorageError:
        raise
    except Exception as exc:
        raise _open_error(url, exc) from None
    if sqlite_path(url) is not None:  # a file several processes share (an in-memory database has one user)
        _serialise_sqlite_transactions(storage.engine)
    elif not url.startswith("sqlite"):
        _wait_for_server_on_reconnect(storage.engine, options.reconnect_window)
    return storage


def artifact_dir(url: str, explicit: str | Path | None = None) -> Path:
    """``explicit`` (``--artifacts``) > beside the SQLite file > ./hpsearch-artifacts."""
    if explicit:
        return Path(explicit)
    path = sqlite_path(url)
    if path is not None:
        return path.with_name(path.stem + "-artifacts")
    return Path("hpsearch-artifacts")


def artifact_store(url: str, explicit: str | Path | None = None) -> Any:
    """A FileSystemArtifactStore next to the storage (shared by workers and the dashboard)."""
    from optuna.artifacts import FileSystemArtifactStore

    class _WholeFiles(FileSystemArtifactStore):
        """Writes each artifact whole or not at all: a full disk leaves no truncated PNG behind."""

        def write(self, artifact_id: str, content_body: BinaryIO) -> None:
            with atomic_output(self._get_filepath(artifact_id), what="artifact") as tmp, tmp.open("wb") as fh:
                shutil.copyfileobj(content_body, fh)

    path = artifact_dir(url, explicit)
    try:  # only made here: a dashboard may read a read-only store; workers check it (check_outputs)
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(path, exc, what="artifact store") from None
    return _WholeFiles(str(path))


def study_exists(storage: RDBStorage, name: str) -> bool:
    """Whether a study of that name is in the storage."""
    return any(s.study_name == name for s in storage.get_all_studies())


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
