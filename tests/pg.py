"""Helpers for the distributed tests: throwaway PostgreSQL databases and servers, worker subprocesses.

``pg_database()`` creates ``hpsearch_test_<random>`` on the local server (trust auth, admin connection to the
``test`` database), yields its SQLAlchemy URL and drops it ``WITH (FORCE)`` afterwards, so a test that dies
half-way leaves no database behind. It skips the test when the server is not reachable.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

PG_HOST = os.environ.get("HPSEARCH_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("HPSEARCH_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("HPSEARCH_TEST_PG_USER", "postgres")
TrialState = optuna.trial.TrialState
ADMIN_DSN = f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname=test connect_timeout=3"


def pg_url(dbname: str, **query: str) -> str:
    url = f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{dbname}"
    if query:
        url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    return url


def admin_connect():
    """An autocommit connection to the ``test`` database, or a skip when the server is not there."""
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        pytest.skip("psycopg is not installed")
    try:
        return psycopg.connect(ADMIN_DSN, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT}: {str(exc).strip().splitlines()[0]}")


@contextmanager
def pg_database() -> Iterator[str]:
    """Create a uniquely named database, yield its URL, always drop it."""
    name = f"hpsearch_test_{secrets.token_hex(4)}"
    with admin_connect() as con:
        con.execute(f'CREATE DATABASE "{name}"')
    try:
        yield pg_url(name)
    finally:
        with admin_connect() as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def connections_by_app(dbname: str) -> dict[str, int]:
    """Open connections to ``dbname`` per application_name (pg_stat_activity)."""
    with admin_connect() as con:
        rows = con.execute(
            "select application_name, count(*) from pg_stat_activity where datname = %s "
            "group by application_name",
            (dbname,),
        ).fetchall()
    return {app: int(n) for app, n in rows}


# ---------------------------------------------------------------------------------------------------------
# worker subprocesses


def hpsearch(*args: object) -> list[str]:
    """The command line of ``hpsearch ARGS`` with this interpreter."""
    return [sys.executable, "-m", "hpsearch", *(str(a) for a in args)]


def _default_sigint() -> None:
    # A suite started in the background by a non-interactive shell (nohup, `&`) inherits SIGINT ignored, and
    # so would every child: the Ctrl-C tests would then see their SIGINT dropped. Children get the default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(args: list[str], log: Path, *, threads: int | None = 1) -> subprocess.Popen:
    """Start a process in its own session (so a signal reaches it, and its children, alone).

    ``threads`` sets OMP_NUM_THREADS: several torch processes with a thread per core each oversubscribe a
    small machine badly (docs/operations.md). None leaves it to the process (``run --workers`` sets it).
    """
    env = dict(os.environ)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    out = open(log, "w")  # noqa: SIM115 - closed with the process in stop()
    proc = subprocess.Popen(
        args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env,
        preexec_fn=_default_sigint,
    )
    proc._log = out  # type: ignore[attr-defined]
    return proc


def stop(procs: list[subprocess.Popen]) -> None:
    """Kill whatever is still running (the process group: `run --workers` has children) and reap it."""
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover
            p.kill()
        log = getattr(p, "_log", None)
        if log is not None:
            log.close()


def wait_for(cond: Callable[[], object], timeout: float, what: str, every: float = 0.2):
    """Poll ``cond`` until it returns something truthy; fail the test after ``timeout`` seconds."""
    t0 = time.monotonic()
    while True:
        try:
            got = cond()
        except Exception:  # storage not there yet, server restarting, ...
            got = None
        if got:
            return got
        if time.monotonic() - t0 > timeout:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


# ---------------------------------------------------------------------------------------------------------
# a private server, for tests that restart it (the shared one on :5432 may serve other test runs)


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    """A port nobody listens on right now: bind port 0 and let the OS choose."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of a GET to a local test server."""
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - local test server
        return resp.status, dict(resp.headers), resp.read()


def get_json(url: str) -> Any:
    """The JSON body of a GET that must answer 200."""
    status, _, body = http_get(url)
    assert status == 200
    return json.loads(body)


class PrivateServer:
    """A throwaway PostgreSQL cluster on a free port (trust auth, fsync off), restartable at will."""

    def __init__(self, root: Path) -> None:
        self.bin = _pg_bin()
        if self.bin is None:
            pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found")
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # postgres refuses to run as root
            if shutil.which("runuser") is None:
                pytest.skip("running as root without runuser: cannot start a private PostgreSQL")
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(root, "postgres")
        opts = f"-p {self.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._ctl_opts = ["-o", opts, "-l", str(root / "server.log"), "-w", "-t", "60"]

    def _run(self, *args: str) -> None:
        res = subprocess.run([*self.as_user, *args], capture_output=True, text=True, timeout=120)
        if res.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {res.stdout}{res.stderr}")

    def init_and_start(self) -> None:
        initdb = str(self.bin / "initdb")
        self._run(initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), *self._ctl_opts, "start")

    def restart(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", *self._ctl_opts, "restart")

    def stop_for(self, seconds: float) -> None:
        """Shut down (fast: clients are disconnected), stay down ``seconds``, start again."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        time.sleep(seconds)
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), *self._ctl_opts, "start")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"


@contextmanager
def private_server() -> Iterator[PrivateServer]:
    """Start a private cluster in a new temporary folder; always stop it and remove its files.

    Not under pytest's tmp_path: the postgres user must be able to reach the folder (and the socket path
    must stay short).
    """
    root = Path(tempfile.mkdtemp(prefix="hpsearch-pg-"))
    try:
        server = PrivateServer(root)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    try:
        try:
            server.init_and_start()
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            pytest.skip(f"cannot start a private PostgreSQL: {str(exc)[:300]}")
        yield server
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------------
# a tiny study file and storage queries

# smoke's tiny U-Net, no pruner (so the trials these tests wait for complete), no gallery, 2 steps an epoch.
DIST_STUDY = {
    "name": "dist",
    "description": "tiny study for the distributed tests",
    "synthetic": True,
    "metric": "val_dice",
    "direction": "maximize",
    "space": {
        "train.lr": {"type": "float", "low": 1.0e-4, "high": 3.0e-1, "log": True},
        "train.batch_size": {"type": "categorical", "choices": [4, 8]},
    },
    "fixed": {
        "model": {"name": "unet", "kwargs": {"base_width": 8, "depth": 2}},
        "train": {
            "epochs": 1, "optimizer": "adam", "loss": "bce_dice", "gallery_k": 0, "max_steps_per_epoch": 2
        },
        "data": {"image_size": 64, "augmentation": "none", "num_workers": 0, "val_fraction": 0.2,
                 "test_fraction": 0.15},
    },
    "sampler": {"name": "tpe", "seed": 0, "kwargs": {"n_startup_trials": 4}},
    "pruner": {"name": "none"},
    "budget": {"n_trials": 3},
}


def write_study(folder: Path, **changes) -> Path:
    path = folder / "dist.yaml"
    path.write_text(yaml.safe_dump({**DIST_STUDY, **changes}))
    return path


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """A storage that keeps no connection open between calls (so it never shows up as a worker's)."""
    from sqlalchemy.pool import NullPool

    return optuna.storages.RDBStorage(url, engine_kwargs={"poolclass": NullPool})


def trials(url: str, name: str = "dist") -> list[optuna.trial.FrozenTrial]:
    storage = open_storage(url)
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
    finally:
        storage.engine.dispose()


def running_mid_trial(url: str, name: str = "dist") -> optuna.trial.FrozenTrial | None:
    """A RUNNING trial that has reported at least one epoch (so it is really training)."""
    live = [t for t in trials(url, name) if t.state == TrialState.RUNNING and t.intermediate_values]
    return live[0] if live else None
