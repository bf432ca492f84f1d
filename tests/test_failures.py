"""Failure modes of a distributed study, for real: SIGKILL mid-trial, Ctrl-C, bad storage URLs, corrupt data.

Workers run as subprocesses (``python -m hpsearch``); every test kills what it started, even when it fails.
OOM and non-finite losses are covered in test_search.py.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy.exc
from pg import hpsearch, running_mid_trial, start, stop, trials, wait_for, write_study

import hpsearch.search.storage as storage_mod
import hpsearch.search.worker as worker
from hpsearch.errors import StorageError
from hpsearch.search import keys
from hpsearch.search.lifecycle import count_tickets, create_study
from hpsearch.search.spec import load_study_spec
from hpsearch.search.worker import INTERRUPTED

TrialState = optuna.trial.TrialState


@pytest.mark.subprocess
def test_worker_killed_mid_trial_is_failed_retried_and_the_budget_holds(
    shared_storage_url: str, tmp_path: Path, synth_data: Path, invoke
) -> None:
    storage_url = shared_storage_url
    study_file = write_study(tmp_path)
    res = invoke("create", "--study", study_file, "--storage", storage_url, "--data", synth_data)
    assert res.exit_code == 0, res.output
    common = ["--study", "dist", "--storage", storage_url, "--data", synth_data, "--out", tmp_path / "runs",
              "--heartbeat", 1, "--grace", 3, "--quiet"]
    procs = []
    try:
        slow = start(hpsearch("worker", *common, "--worker-index", 0, "--set", "train.epochs=50"),
                     tmp_path / "slow.log")
        procs.append(slow)
        victim = wait_for(lambda: running_mid_trial(storage_url), 90, "a RUNNING trial")
        os.killpg(slow.pid, signal.SIGKILL)
        slow.wait(timeout=30)
        assert slow.returncode == -signal.SIGKILL
        left = {t.number: t.state for t in trials(storage_url)}
        assert left[victim.number] == TrialState.RUNNING  # the kill leaves it RUNNING: nobody told Optuna

        fresh = start(hpsearch("worker", *common, "--worker-index", 1), tmp_path / "fresh.log")
        procs.append(fresh)
        fresh.wait(timeout=150)
        log = (tmp_path / "fresh.log").read_text()
        assert fresh.returncode == 0, log
    finally:
        stop(procs)

    final = trials(storage_url)
    by_number = {t.number: t for t in final}
    assert by_number[victim.number].state == TrialState.FAIL
    retries = [t for t in final if t.system_attrs.get(keys.FAILED_TRIAL) == victim.number]
    assert len(retries) == 1, [(t.number, t.state, t.system_attrs) for t in final]
    retry = retries[0]
    assert retry.state == TrialState.COMPLETE and retry.value is not None
    assert retry.params == victim.params  # a retry re-runs the same point
    assert retry.user_attrs[keys.WORKER] == "1"
    # The budget (3) holds: 3 finished trials + the one that died, nothing waiting or running.
    states = [t.state for t in final]
    assert states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED) == 3
    assert states.count(TrialState.FAIL) == 1 and len(final) == 4
    # A later top-up counts the retry as a re-run, not a new ticket: +1 budget is exactly 1 new trial.
    res = invoke("create", "--study", study_file, "--storage", storage_url, "--data", synth_data,
                 "--n-trials", 4)
    assert res.exit_code == 0, res.output
    waiting = [t for t in trials(storage_url) if t.state == TrialState.WAITING]
    assert len(waiting) == 1 and waiting[0].user_attrs[keys.TICKET]


@pytest.mark.subprocess
def test_ctrl_c_fails_the_trial_says_how_to_resume_and_the_rerun_completes_the_budget(
    tmp_path: Path, synth_data: Path
) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    cmd = hpsearch("run", "--study", write_study(tmp_path), "--storage", url, "--data", synth_data,
                   "--n-trials", 2, "--out", tmp_path / "runs", "--set", "train.epochs=15",
                   "--set", "train.max_steps_per_epoch=1")
    procs = []
    try:
        proc = start(cmd, tmp_path / "run.log")
        procs.append(proc)
        victim = wait_for(lambda: running_mid_trial(url), 90, "a RUNNING trial")
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        proc.wait(timeout=60)
    finally:
        stop(procs)
    out = (tmp_path / "run.log").read_text()
    assert proc.returncode == 130, out
    assert "resume with:" in out, out
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out  # the clean lines only
    hint = out.split("resume with:", 1)[1].strip().splitlines()[0]
    after = {t.number: t for t in trials(url)}
    assert not [t for t in after.values() if t.state == TrialState.RUNNING]
    assert after[victim.number].state == TrialState.FAIL
    assert after[victim.number].user_attrs[keys.FAIL_REASON] == INTERRUPTED == "interrupted (Ctrl-C)"

    # The printed command is the way back: it keeps the budget and the overrides.
    assert hint.startswith("hpsearch run ") and "--n-trials 2" in hint and "train.epochs=15" in hint, hint
    again = subprocess.run(hpsearch(*shlex.split(hint)[1:]), capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stdout + again.stderr
    final = trials(url)
    states = [t.state for t in final]
    assert states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED) == 2
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states
    rerun = [t for t in final if t.system_attrs.get(keys.FAILED_TRIAL) == victim.number]
    assert len(rerun) == 1 and rerun[0].params == victim.params and rerun[0].state == TrialState.COMPLETE


@pytest.mark.subprocess
def test_ctrl_c_on_run_with_workers_stops_every_worker_cleanly(tmp_path: Path, synth_data: Path) -> None:
    url = f"sqlite:///{tmp_path}/c2.db"
    cmd = hpsearch("run", "--study", write_study(tmp_path), "--storage", url, "--data", synth_data,
                   "--n-trials", 4, "--workers", 2, "--out", tmp_path / "runs", "--set", "train.epochs=15",
                   "--set", "train.max_steps_per_epoch=1")
    procs = []
    try:
        proc = start(cmd, tmp_path / "run.log", threads=None)
        procs.append(proc)

        def both_training() -> bool:
            busy = [t for t in trials(url) if t.state == TrialState.RUNNING and t.intermediate_values]
            return len(busy) == 2

        wait_for(both_training, 90, "both workers in a trial")
        os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the workers too
        proc.wait(timeout=60)
    finally:
        stop(procs)
    out = (tmp_path / "run.log").read_text()
    assert proc.returncode == 130 and "resume with:" in out, out
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out
    final = trials(url)
    assert TrialState.RUNNING not in [t.state for t in final]
    stopped = [t for t in final if t.state == TrialState.FAIL]
    assert len(stopped) >= 2 and all(t.user_attrs[keys.FAIL_REASON] == INTERRUPTED for t in stopped)
    requeued = {t.system_attrs.get(keys.FAILED_TRIAL) for t in final if t.state == TrialState.WAITING}
    assert {t.number for t in stopped} <= requeued


BAD_STORAGE = [
    ("postgresql+psycopg://bob:s3cret@127.0.0.1:1/hpsearch", ["cannot open storage", "127.0.0.1", "port 1"]),
    ("postgres://bob:s3cret@127.0.0.1:5432/hpsearch", ["postgresql+psycopg://"]),
    ("postgresql://bob:s3cret@127.0.0.1:5432/hpsearch", ["postgresql+psycopg://"]),
    ("mysql://bob:s3cret@127.0.0.1/hpsearch", ["cannot open storage", "mysql://bob:***@"]),
    ("sqlite//x.db", ["is not a URL", "sqlite:///"]),
    ("bob:s3cret@127.0.0.1/hpsearch", ["is not a URL"]),
    ("sqlite:///{tmp}/missing/x.db", ["does not exist"]),
]


@pytest.mark.parametrize("command", ["run", "worker"])
@pytest.mark.parametrize(("url", "expected"), BAD_STORAGE, ids=[u.split(":")[0] for u, _ in BAD_STORAGE])
def test_bad_storage_gives_one_line_exit_1_and_never_the_password(
    command: str, url: str, expected: list[str], tmp_path: Path, synth_data: Path, invoke
) -> None:
    url = url.replace("{tmp}", str(tmp_path))
    t0 = time.monotonic()
    res = invoke(command, "--study", "smoke", "--storage", url, "--data", synth_data, "--out", tmp_path)
    assert res.exit_code == 1, res.output
    assert time.monotonic() - t0 < 30
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), res.output
    assert "s3cret" not in res.output and "Traceback" not in res.output
    for part in expected:
        assert part in res.output, res.output
    assert not list(tmp_path.rglob("*.db"))


def test_password_is_masked_when_the_storage_url_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, synth_data: Path, invoke
) -> None:
    monkeypatch.setenv("HPSEARCH_STORAGE", "postgresql+psycopg://bob:s3cret@127.0.0.1:1/hpsearch")
    res = invoke("create", "--study", "smoke", "--data", synth_data)
    assert res.exit_code == 1 and "bob:***@" in res.output and "s3cret" not in res.output, res.output


@pytest.fixture
def corrupt_data(tmp_path: Path, synth_data: Path) -> tuple[Path, Path]:
    """A copy of the synthetic data with one image cut in half."""
    data = tmp_path / "data"
    shutil.copytree(synth_data, data)
    victim = sorted((data / "images").iterdir())[3]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    return data, victim


@pytest.mark.parametrize("command", ["run", "worker"])
def test_corrupt_data_aborts_before_any_study_or_trial(
    command: str, corrupt_data: tuple[Path, Path], tmp_path: Path, invoke
) -> None:
    data, victim = corrupt_data
    db = tmp_path / "d.db"
    res = invoke(command, "--study", "smoke", "--storage", f"sqlite:///{db}", "--data", data,
                 "--out", tmp_path / "runs")
    assert res.exit_code == 1, res.output
    assert victim.name in res.output and "Traceback" not in res.output, res.output
    assert not db.exists()  # a study file's data is checked before the storage is even opened
    assert not (tmp_path / "runs").exists()


def test_corrupt_data_stops_a_joining_worker_before_it_claims_a_trial(
    corrupt_data: tuple[Path, Path], tmp_path: Path, synth_data: Path, invoke
) -> None:
    data, victim = corrupt_data
    url = f"sqlite:///{tmp_path}/j.db"
    res = invoke("create", "--study", write_study(tmp_path), "--storage", url, "--data", synth_data)
    assert res.exit_code == 0, res.output
    # Same names, one file damaged since: the worker must refuse before it takes a ticket.
    res = invoke("worker", "--study", "dist", "--storage", url, "--data", data, "--out", tmp_path / "runs")
    assert res.exit_code == 1 and victim.name in res.output, res.output
    assert [t.state for t in trials(url)] == [TrialState.WAITING] * 3


def _flaky_ask(monkeypatch: pytest.MonkeyPatch, fail_calls: set[int]) -> None:
    """Make claiming a trial raise what a dropped PostgreSQL connection raises, after the claim committed."""
    real_ask = worker.WorkerStudy.ask
    calls = {"n": 0}

    def ask(self, fixed_distributions=None):
        trial = real_ask(self, fixed_distributions)
        calls["n"] += 1
        if calls["n"] in fail_calls:
            raise sqlalchemy.exc.OperationalError(
                "SELECT ...", {}, Exception("terminating connection due to administrator command")
            )
        return trial

    monkeypatch.setattr(worker.WorkerStudy, "ask", ask)


def _budgeted_smoke_study(url: str, n_trials: int) -> optuna.Study:
    spec = load_study_spec("smoke")
    storage = storage_mod.make_storage(url)
    create_study(spec, storage, split_hash="h", n_trials=n_trials)
    return worker.worker_study("smoke", storage, spec, seed_offset=0, budgeted=True)


def _objective(trial: optuna.Trial) -> float:
    return trial.suggest_float("train.lr", 1e-4, 0.3, log=True)


def test_a_storage_error_while_claiming_a_trial_fails_and_requeues_it(
    storage_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = _budgeted_smoke_study(storage_url, 3)
    _flaky_ask(monkeypatch, {1})
    summary = worker.run_trials(study, _objective)
    final = study.get_trials()
    # The claimed trial is not left RUNNING (it had no heartbeat yet: it would never go stale) ...
    assert final[0].state == TrialState.FAIL
    reason = final[0].user_attrs[keys.FAIL_REASON]
    assert reason.startswith("storage error: ") and "terminating connection" in reason
    # ... and its ticket is re-run, so the budget is still spent exactly.
    assert [t.state for t in final[1:]] == [TrialState.COMPLETE] * 3
    assert final[3].system_attrs[keys.FAILED_TRIAL] == 0 and summary.trials == [1, 2, 3]
    assert count_tickets(study) == 3


def test_a_storage_that_keeps_failing_ends_the_worker_with_one_line(
    storage_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = _budgeted_smoke_study(storage_url, 5)
    _flaky_ask(monkeypatch, {1, 2, 3, 4, 5})
    with pytest.raises(StorageError, match="storage keeps failing"):
        worker.run_trials(study, _objective)
    assert TrialState.RUNNING not in [t.state for t in study.get_trials()]


def _trial_id(storage: Any, trial: optuna.Trial) -> int:
    """A smoke-study trial's storage id, as the storage's public API gives it."""
    study_id = storage.get_study_id_from_name("smoke")
    return storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)


def _two_workers_one_beat(url: str, n_trials: int, grace: int = 2) -> tuple[Any, optuna.Trial, Any]:
    """A budgeted smoke study with fast heartbeats; one worker has claimed a trial that has beaten once."""
    spec = load_study_spec("smoke")
    opts = storage_mod.StorageOptions(heartbeat_interval=1, grace_period=grace)
    storage = storage_mod.make_storage(url, opts)
    create_study(spec, storage, split_hash="h", n_trials=n_trials)
    first = worker.worker_study("smoke", storage, spec, seed_offset=0, budgeted=True)
    claimed = first.ask()
    claimed.suggest_float("train.lr", 1e-4, 0.3, log=True)
    storage.record_heartbeat(_trial_id(storage, claimed))
    second = worker.worker_study("smoke", storage, spec, seed_offset=1, budgeted=True)
    return storage, claimed, second


def test_a_trial_that_dies_as_the_budget_runs_out_is_still_retried(storage_url: str) -> None:
    """The last ticket is claimed while another worker's trial has just gone silent (not yet stale): the
    worker must wait for it to go stale and re-run it instead of leaving it RUNNING."""
    _, victim, live = _two_workers_one_beat(storage_url, 2)  # the victim beat once, then its worker "died"
    t0 = time.monotonic()
    summary = worker.run_trials(live, _objective)
    final = live.get_trials()
    assert final[victim.number].state == TrialState.FAIL
    retries = [t for t in final if t.system_attrs.get(keys.FAILED_TRIAL) == victim.number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == final[victim.number].params
    assert sorted(summary.trials) == sorted(t.number for t in final if t.number != victim.number)
    assert time.monotonic() - t0 < 30  # bounded by the grace period, not an open-ended wait


def test_a_worker_does_not_idle_behind_trials_that_are_alive(
    storage_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A long grace period: Optuna's own stale check (at the start of each trial) must not fail it either.
    storage, running, live = _two_workers_one_beat(storage_url, 2, grace=60)
    # Its worker keeps beating: every look finds a fresh heartbeat.
    monkeypatch.setattr(worker, "heartbeat_ages", lambda *_: {_trial_id(storage, running): 0.2})
    t0 = time.monotonic()
    worker.run_trials(live, _objective)
    assert time.monotonic() - t0 < 5
    assert live.get_trials()[running.number].state == TrialState.RUNNING  # left to its own worker


def test_heartbeat_ages_reads_running_trials_only(storage_url: str) -> None:
    spec = load_study_spec("smoke")
    opts = storage_mod.StorageOptions(heartbeat_interval=1)
    storage = storage_mod.make_storage(storage_url, opts)
    create_study(spec, storage, split_hash="h", n_trials=3)
    w = worker.worker_study("smoke", storage, spec, seed_offset=0, budgeted=True)
    a, b = w.ask(), w.ask()
    storage.record_heartbeat(_trial_id(storage, a))
    storage.record_heartbeat(_trial_id(storage, b))
    w.tell(b, 0.5)
    ages = storage_mod.heartbeat_ages(storage, storage.get_study_id_from_name("smoke"))
    assert list(ages) == [_trial_id(storage, a)] and 0 <= ages[_trial_id(storage, a)] < 5


def test_storage_errors_read_the_same_whatever_the_driver_versions_say() -> None:
    """At the lowest allowed SQLAlchemy a plain postgresql:// URL asks for psycopg2, and an older libpq words
    a refused connection without the port: the one line still names the fix and the server, not the secret."""
    url = "postgresql://bob:s3cret@127.0.0.1:1/hpsearch"
    missing = storage_mod._open_error(url, ModuleNotFoundError("No module named 'psycopg2'", name="psycopg2"))
    assert "psycopg2" in str(missing) and "postgresql+psycopg://" in str(missing)
    refused = OSError("connection failed: Connection refused\n\tIs the server running on that host?")
    line = str(storage_mod._open_error(url.replace("postgresql", "postgresql+psycopg"), refused))
    assert "server 127.0.0.1 port 1" in line and "Connection refused" in line and "s3cret" not in line
    worded = OSError('connection to server at "127.0.0.1", port 1 failed: Connection refused')
    assert "(server" not in str(storage_mod._open_error(url, worded))  # already named: not twice
    mysql = storage_mod._open_error("mysql://bob:s3cret@h/db", ModuleNotFoundError("x", name="MySQLdb"))
    assert str(mysql).endswith("database driver missing (MySQLdb); install it")
