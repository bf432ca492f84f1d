"""PostgreSQL as the shared storage: 8 concurrent workers, connections per worker, a cold start of several
workers on an empty database, and a server restart in the middle of a study.

Needs the server on 127.0.0.1:5432 (each test gets its own ``hpsearch_test_<random>`` database, dropped
afterwards); the restart test starts its own private server on a free port so it never disturbs others.
The SIGKILL test against PostgreSQL is in test_failures.py.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import optuna
import pytest
from pg import (
    ADMIN_DSN,
    connections_by_app,
    hpsearch,
    pg_database,
    private_server,
    start,
    stop,
    trials,
    wait_for,
    write_study,
)

from hpsearch.search import keys

pytestmark = [pytest.mark.postgres, pytest.mark.subprocess]
TrialState = optuna.trial.TrialState

POOL_SIZE, MAX_OVERFLOW = 2, 2  # what make_storage gives a PostgreSQL engine


class ConnectionSampler(threading.Thread):
    """Polls pg_stat_activity for the database: the most connections seen per application_name."""

    def __init__(self, dbname: str, every: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.dbname, self.every = dbname, every
        self.peak: dict[str, int] = {}
        self.peak_total = 0
        self.samples = 0
        self._halt = threading.Event()

    def run(self) -> None:
        import psycopg

        with psycopg.connect(ADMIN_DSN, autocommit=True) as con:
            while not self._halt.is_set():
                rows = con.execute(
                    "select application_name, count(*) from pg_stat_activity where datname = %s "
                    "group by application_name",
                    (self.dbname,),
                ).fetchall()
                for app, n in rows:
                    self.peak[app] = max(self.peak.get(app, 0), int(n))
                self.peak_total = max(self.peak_total, sum(int(n) for _, n in rows))
                self.samples += 1
                self._halt.wait(self.every)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)


def test_8_workers_spend_the_budget_exactly_with_at_most_4_connections_each(
    tmp_path: Path, synth_data: Path, invoke
) -> None:
    n_trials, n_workers = 24, 8
    with pg_database() as url:
        dbname = url.rsplit("/", 1)[1]
        res = invoke("create", "--study", "smoke", "--storage", url, "--data", synth_data,
                     "--n-trials", n_trials)
        assert res.exit_code == 0, res.output
        sampler = ConnectionSampler(dbname)
        sampler.start()
        procs = []
        t0 = time.monotonic()
        try:
            for i in range(n_workers):
                # application_name tells the workers' connections apart in pg_stat_activity
                storage = f"{url}?application_name=hpsearch-w{i}"
                cmd = hpsearch("worker", "--study", "smoke", "--storage", storage, "--data", synth_data,
                               "--out", tmp_path / "runs", "--artifacts", tmp_path / "art",
                               "--worker-index", i, "--quiet", "--heartbeat", 1, "--grace", 30,
                               "--max-epochs", 1, "--set", "train.gallery_k=0",
                               "--set", "train.max_steps_per_epoch=2", "--set", "data.num_workers=0",
                               "--set", "data.augmentation=none")
                procs.append(start(cmd, tmp_path / f"w{i}.log"))
            for p in procs:
                p.wait(timeout=400)
        finally:
            stop(procs)
            sampler.stop()
        wall = time.monotonic() - t0
        logs = "\n".join((tmp_path / f"w{i}.log").read_text() for i in range(n_workers))
        assert [p.returncode for p in procs] == [0] * n_workers, logs
        assert not connections_by_app(dbname).get("hpsearch-w0"), "a finished worker left connections open"

        final = trials(url, "smoke")
        states = [t.state for t in final]
        fails = states.count(TrialState.FAIL)
        per_worker = {app: n for app, n in sampler.peak.items() if app.startswith("hpsearch-w")}
        print(f"\nPostgreSQL load: {len(final)} trials, {n_workers} workers, {wall:.1f}s wall, "
              f"{fails} failures ({states.count(TrialState.COMPLETE)} complete, "
              f"{states.count(TrialState.PRUNED)} pruned); "
              f"connections per worker: max {max(per_worker.values())}, "
              f"typical {sorted(per_worker.values())[len(per_worker) // 2]}; "
              f"peak total {sampler.peak_total} ({sampler.samples} samples)")

    assert len(final) == n_trials
    assert sorted(t.number for t in final) == list(range(n_trials))  # Optuna's numbering held up
    reasons = [t.user_attrs.get(keys.FAIL_REASON) for t in final if t.state == TrialState.FAIL]
    assert set(states) <= {TrialState.COMPLETE, TrialState.PRUNED}, reasons
    assert all(t.value is not None for t in final if t.state == TrialState.COMPLETE)
    lrs = [t.params["train.lr"] for t in final]
    assert len(set(lrs)) == n_trials, "two trials drew the same learning rate"
    assert len({t.user_attrs[keys.WORKER] for t in final}) >= 4  # the work really was shared
    # Connection budget: pool_size + max_overflow per worker, heartbeat thread included.
    assert len(per_worker) == n_workers, sampler.peak
    assert max(per_worker.values()) <= POOL_SIZE + MAX_OVERFLOW, per_worker
    assert sampler.peak_total <= n_workers * (POOL_SIZE + MAX_OVERFLOW)


def test_workers_started_together_on_an_empty_database_create_one_study_and_one_budget(
    tmp_path: Path, synth_data: Path
) -> None:
    """A Slurm array or an indexed Job with no `hpsearch create` first: all workers race to create it."""
    study_file = write_study(tmp_path, budget={"n_trials": 4})
    with pg_database() as url:
        procs = []
        try:
            for i in range(4):
                cmd = hpsearch("worker", "--study", study_file, "--storage", url, "--data", synth_data,
                               "--out", tmp_path / "runs", "--artifacts", tmp_path / "art", "--quiet",
                               "--worker-index", i)
                procs.append(start(cmd, tmp_path / f"w{i}.log"))
            for p in procs:
                p.wait(timeout=300)
        finally:
            stop(procs)
        logs = "\n".join((tmp_path / f"w{i}.log").read_text() for i in range(4))
        assert [p.returncode for p in procs] == [0, 0, 0, 0], logs
        assert optuna.get_all_study_names(url) == ["dist"]
        final = trials(url)
    assert len(final) == 4 and all(t.state == TrialState.COMPLETE for t in final)
    assert sorted(t.number for t in final) == [0, 1, 2, 3]


def test_workers_ride_out_a_server_restart_and_keep_completed_trials(
    tmp_path: Path, synth_data: Path, invoke
) -> None:
    n_trials = 6
    study_file = write_study(tmp_path, budget={"n_trials": n_trials})
    with private_server() as server:
        url = server.url()
        res = invoke("create", "--study", study_file, "--storage", url, "--data", synth_data)
        assert res.exit_code == 0, res.output
        procs = []
        try:
            for i in range(2):
                cmd = hpsearch("worker", "--study", "dist", "--storage", url, "--data", synth_data,
                               "--out", tmp_path / "runs", "--artifacts", tmp_path / "art", "--quiet",
                               "--worker-index", i, "--heartbeat", 1, "--grace", 10,
                               # Long enough per trial (a few seconds) that the restart lands mid-study.
                               "--set", "train.epochs=40", "--set", "train.max_steps_per_epoch=1")
                procs.append(start(cmd, tmp_path / f"w{i}.log"))

            def two_done_and_one_running():
                if all(p.poll() is not None for p in procs):
                    pytest.fail("the workers finished before the restart; make the trials longer")
                ts = trials(url)
                done = [t for t in ts if t.state == TrialState.COMPLETE]
                return done if len(done) >= 2 and any(t.state == TrialState.RUNNING for t in ts) else None

            before = wait_for(two_done_and_one_running, 180, "2 completed trials and 1 running")
            # Down for a few seconds (longer than pre-ping alone can hide), then back.
            server.stop_for(4.0)
            restarted = time.time()
            for p in procs:
                p.wait(timeout=300)
        finally:
            stop(procs)
        logs = "\n".join((tmp_path / f"w{i}.log").read_text() for i in range(2))
        final = {t.number: t for t in trials(url)}

    assert [p.returncode for p in procs] == [0, 0], logs
    for t in before:  # completed trials are kept, values and all
        assert final[t.number].state == TrialState.COMPLETE and final[t.number].value == t.value
    states = [t.state for t in final.values()]
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states
    after = [t for t in final.values() if t.state == TrialState.COMPLETE
             and t.datetime_complete.timestamp() > restarted]
    assert after, "no trial completed after the restart"
    # A trial caught exactly mid-write may fail (and is not retried), but the budget is otherwise spent.
    assert states.count(TrialState.COMPLETE) >= n_trials - 2
    assert states.count(TrialState.COMPLETE) + states.count(TrialState.FAIL) == n_trials
