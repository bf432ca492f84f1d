"""Several workers on one study (SQLite): spawned command lines, seed streams, the shared budget, load.

The PostgreSQL side (8 workers, connection counts, restarts) is in test_postgres.py; crashes and Ctrl-C in
test_failures.py.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from pg import hpsearch, open_storage, start, stop, trials, write_study

import hpsearch.search.launch as launch
import hpsearch.search.worker as worker
from hpsearch.cli.flags import search_options, worker_index_from_env
from hpsearch.search import keys
from hpsearch.search.lifecycle import PreparedStudy, create_study
from hpsearch.search.options import SearchOptions, parse_overrides
from hpsearch.search.spec import load_study_spec
from hpsearch.search.storage import StorageOptions, make_storage
from hpsearch.search.worker import WorkerSummary

TrialState = optuna.trial.TrialState

# Values that are easy to mangle on the way through a command line and back through YAML.
TRICKY = {
    "train.lr": 1e-3,
    "train.weight_decay": 0.0,
    "data.augmentation": "none",
    "data.split_file": "/data/with space/and: colon #hash.json",
    "model.kwargs": {"base_width": 8, "attention": "cbam"},
    "train.loss_kwargs": {"alpha": 0.25, "gamma": 2},
    "x.yes_string": "yes",
    "x.null_string": "null",
    "x.empty": "",
    "x.number_string": "1e-3",
    "x.list": [1, "a b", None, 2.5],
    "x.flag": True,
    "x.none": None,
    "x.long": "word " * 40,
    "x.equals": "a=b",
}


def test_spawned_worker_command_lines_round_trip_every_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, invoke
) -> None:
    opts = SearchOptions(
        study="smoke",
        storage=f"sqlite:///{tmp_path}/s.db",
        data=tmp_path / "data",
        out=tmp_path / "runs",
        artifacts=tmp_path / "art",
        device="cpu",
        max_epochs=3,
        timeout=90.5,
        overrides=dict(TRICKY),
        storage_options=StorageOptions(heartbeat_interval=7, grace_period=21),
    )
    prepared = PreparedStudy(
        spec=load_study_spec("smoke"), study_name="smoke-2", storage_url=opts.storage, storage=None,
        data_dir=tmp_path / "data", split_hash="h", created=True, out_root=tmp_path / "runs" / "smoke-2",
    )
    launched: list[tuple[list[str], dict]] = []

    class FakePopen:
        def __init__(self, cmd: list[str], env: dict) -> None:
            launched.append((cmd, env))

    monkeypatch.setattr(launch.subprocess, "Popen", FakePopen)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    launch.spawn_workers(opts, prepared, 3)
    assert len(launched) == 3

    # Each child command line, parsed by the real CLI (run_worker stubbed), gives back the same options.
    seen: list[tuple[SearchOptions, int | None]] = []

    def fake_run_worker(o: SearchOptions, *, worker_index, max_trials=None, on_event=None):
        seen.append((o, worker_index))
        return WorkerSummary(), None

    monkeypatch.setattr(worker, "run_worker", fake_run_worker)
    for cmd, env in launched:
        assert cmd[:4] == [sys.executable, "-m", "hpsearch", "worker"]
        res = invoke(*cmd[3:])
        assert res.exit_code == 0, res.output
        assert env.get("CUDA_VISIBLE_DEVICES") == os.environ.get("CUDA_VISIBLE_DEVICES")  # no GPU here
        # CPU workers split the cores instead of each starting a thread per core.
        assert env["OMP_NUM_THREADS"] == str(max(1, (os.cpu_count() or 1) // 3))
    assert [idx for _, idx in seen] == [0, 1, 2]  # one seed stream each
    for child, _ in seen:
        assert child.overrides == TRICKY
        assert child.study == "smoke-2" and child.storage == opts.storage
        assert Path(child.data) == opts.data and Path(child.out) == tmp_path / "runs"
        assert Path(child.artifacts) == opts.artifacts and child.device == "cpu"
        assert child.max_epochs == 3 and child.timeout == 90.5
        assert child.storage_options.heartbeat_interval == 7 and child.storage_options.grace_period == 21
    # The resume hint uses the same encoding.
    args = shlex.split(launch.resume_hint(opts, prepared))
    sets = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    assert parse_overrides(sets) == TRICKY


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_worker_seed_streams_differ_per_worker_and_do_not_replay_on_resume(
    storage_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = load_study_spec("smoke")
    storage = make_storage(storage_url)
    study = create_study(spec, storage, split_hash="h", n_trials=6)
    seeds: list[int] = []
    real = worker.build_sampler
    monkeypatch.setattr(worker, "build_sampler", lambda n, seed, kw: seeds.append(seed) or real(n, seed, kw))

    def first_lr(index: int) -> float:
        w = worker.worker_study("smoke", storage, spec, seed_offset=index, budgeted=False)
        # The worker's sampler asked for a first point on a scratch study: TPE's start-up stream.
        return optuna.create_study(sampler=w.sampler).ask().suggest_float("x", 0.0, 1.0)

    lrs = [first_lr(i) for i in (0, 1, 2, 0)]
    assert seeds == [0, 7919, 2 * 7919, 0]  # sampler seed = spec seed + 7919 * worker index
    assert len(set(lrs[:3])) == 3 and lrs[3] == lrs[0]  # distinct per worker, reproducible per index
    # Two trials later (a resume, or a restarted worker with the same index) the stream moves on.
    for _ in range(2):
        t = study.ask()
        study.tell(t, 0.5)
    seeds.clear()
    assert first_lr(0) != lrs[0] and seeds[0] != 0


def test_rerun_of_the_same_command_does_not_repeat_the_first_points(
    tmp_path: Path, synth_data: Path, invoke
) -> None:
    url = f"sqlite:///{tmp_path}/r.db"
    args = ["run", "--study", write_study(tmp_path), "--storage", url, "--data", synth_data,
            "--out", tmp_path / "runs", "--artifacts", tmp_path / "art"]
    assert invoke(*args, "--n-trials", 2).exit_code == 0
    res = invoke(*args, "--n-trials", 4)
    assert res.exit_code == 0, res.output
    lrs = [t.params["train.lr"] for t in trials(url)]
    assert len(lrs) == 4 and len(set(lrs)) == 4, lrs


def test_default_worker_index_comes_from_slurm_kubernetes_or_the_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HPSEARCH_WORKER_INDEX", "SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX", "SLURM_PROCID"):
        monkeypatch.delenv(var, raising=False)
    local = worker_index_from_env()
    assert 0 <= local < 100_000
    monkeypatch.setenv("SLURM_PROCID", "0")  # the task rank: 0 in every single-task array element
    assert worker_index_from_env() == 0
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "3")
    assert worker_index_from_env() == 3
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "12")
    assert worker_index_from_env() == 12
    monkeypatch.setenv("HPSEARCH_WORKER_INDEX", "5")
    assert worker_index_from_env() == 5  # an explicit setting wins
    monkeypatch.setenv("HPSEARCH_WORKER_INDEX", "not-a-number")
    assert worker_index_from_env() == 12


def test_worker_budget_is_the_study_total_not_per_worker(
    tmp_path: Path, synth_data: Path, monkeypatch: pytest.MonkeyPatch, invoke
) -> None:
    url = f"sqlite:///{tmp_path}/b.db"
    study_file = write_study(tmp_path)  # budget: 3 trials
    common = ["--storage", url, "--data", synth_data, "--out", tmp_path / "runs", "--quiet"]
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "5")
    # A worker pointed at a study file that is not in storage yet creates it (budget 3) and runs 1 trial.
    res = invoke("worker", "--study", study_file, *common, "--n-trials", 1)
    assert res.exit_code == 0, res.output
    assert "worker 5 done: complete 1" in res.output
    first = trials(url)
    assert len(first) == 3 and [t.state for t in first].count(TrialState.COMPLETE) == 1
    assert first[0].user_attrs[keys.WORKER] == "5"  # the index came from the Slurm array task id
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID")
    # The next worker (by study name) runs what is left of the total, then stops.
    res = invoke("worker", "--study", "dist", *common, "--worker-index", 1)
    assert res.exit_code == 0 and "worker 1 done: complete 2" in res.output, res.output
    # More workers, by name or by file, find the budget spent: no new trial, no new ticket.
    for study in ("dist", study_file):
        res = invoke("worker", "--study", study, *common, "--worker-index", 2)
        assert res.exit_code == 0 and "no trials" in res.output, res.output
    final = trials(url)
    assert len(final) == 3 and all(t.state == TrialState.COMPLETE for t in final)
    assert sorted(t.user_attrs[keys.WORKER] for t in final) == ["1", "1", "5"]


CLAIMER = """
import sys
import optuna
from hpsearch.search.storage import make_storage
storage = make_storage(sys.argv[1])
study = optuna.load_study(study_name="claims", storage=storage)
got = []
while (tid := study._pop_waiting_trial_id()) is not None:
    got.append(tid)
print(" ".join(map(str, got)))
"""


@pytest.mark.subprocess
def test_sqlite_claims_a_waiting_trial_atomically_across_processes(tmp_path: Path) -> None:
    """Two workers must never both start the same queued trial (the budget tickets rely on it)."""
    url = f"sqlite:///{tmp_path}/claims.db"
    study = optuna.create_study(study_name="claims", storage=make_storage(url))
    for _ in range(120):
        study.enqueue_trial({})
    procs = [subprocess.Popen([sys.executable, "-c", CLAIMER, url], stdout=subprocess.PIPE, text=True)
             for _ in range(4)]
    try:
        outs = [p.communicate(timeout=120)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert [p.returncode for p in procs] == [0, 0, 0, 0]
    claimed = [int(x) for out in outs for x in out.split()]
    twice = len(claimed) - len(set(claimed))
    assert twice == 0 and len(claimed) == 120, f"{twice} trials claimed twice"
    assert sum(1 for out in outs if out.split()) >= 2  # they really competed


@pytest.mark.subprocess
def test_run_with_4_workers_on_sqlite_spends_the_budget_exactly(tmp_path: Path, synth_data: Path) -> None:
    n_trials, n_workers = 24, 4
    url = f"sqlite:///{tmp_path}/load.db"
    cmd = hpsearch("run", "--study", "smoke", "--storage", url, "--data", synth_data, "--n-trials", n_trials,
                   "--workers", n_workers, "--out", tmp_path / "runs", "--max-epochs", 1,
                   "--set", "train.gallery_k=0", "--set", "train.max_steps_per_epoch=2",
                   "--set", "data.num_workers=0", "--set", "data.augmentation=none",
                   "--set", "train.weight_decay=1.0e-6")
    procs = []
    t0 = time.monotonic()
    try:
        proc = start(cmd, tmp_path / "run.log", threads=None)  # `run` splits the cores between its workers
        procs.append(proc)
        proc.wait(timeout=400)
    finally:
        stop(procs)
    wall = time.monotonic() - t0
    log = (tmp_path / "run.log").read_text()
    assert proc.returncode == 0, log
    assert "worker exit codes" not in log and "Traceback" not in log and "locked" not in log, log

    storage = open_storage(url)
    final = optuna.load_study(study_name="smoke", storage=storage).get_trials()
    storage.engine.dispose()
    states = [t.state for t in final]
    fails = states.count(TrialState.FAIL)
    print(f"\nSQLite load: {len(final)} trials, {n_workers} workers, {wall:.1f}s wall, {fails} failures "
          f"({states.count(TrialState.COMPLETE)} complete, {states.count(TrialState.PRUNED)} pruned)")
    assert len(final) == n_trials
    assert sorted(t.number for t in final) == list(range(n_trials))
    reasons = [t.user_attrs.get(keys.FAIL_REASON) for t in final if t.state == TrialState.FAIL]
    assert set(states) <= {TrialState.COMPLETE, TrialState.PRUNED}, reasons
    assert all(t.value is not None for t in final if t.state == TrialState.COMPLETE)
    lrs = [t.params["train.lr"] for t in final]
    assert len(set(lrs)) == n_trials, "two trials drew the same learning rate"
    workers = {t.user_attrs[keys.WORKER] for t in final}
    assert workers <= {"0", "1", "2", "3"} and len(workers) >= 2
    # The --set values made it through the spawned workers' command lines into every trial.
    for t in final:
        cfg = t.user_attrs[keys.CONFIG]
        assert cfg["train"]["weight_decay"] == 1e-6 and cfg["train"]["max_steps_per_epoch"] == 2
        assert cfg["data"]["augmentation"] == "none" and cfg["train"]["epochs"] == 1


def test_resume_hint_never_shows_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql+psycopg://bob:s3cret@db.example:5432/hp"
    given = {"study": "smoke", "storage": url, "n_trials": 10, "sets": ["train.epochs=2"]}
    hint = launch.resume_hint(search_options(**given))
    assert "bob:***@db.example" in hint and "s3cret" not in hint
    assert shlex.split(hint)[:4] == ["hpsearch", "run", "--study", "smoke"] and "--n-trials 10" in hint
    # A URL that came from HPSEARCH_STORAGE is left out: the command then works as printed.
    monkeypatch.setenv("HPSEARCH_STORAGE", url)
    hint = launch.resume_hint(search_options(**given))
    assert "--storage" not in hint and "s3cret" not in hint and "train.epochs=2" in hint
