"""Faults lose nothing: full disks, unwritable folders, broken data folders and workers starting together.

Each probe ends in one ``error:`` line naming the path or value and its cause, exit 1 (2 for a bad option
value), no traceback; a fault never spends a budget ticket and never leaves a half-written file.

Full disks and read-only folders are real small tmpfs mounts where this process may mount one (as root in a
container); elsewhere the writers get an injected ``OSError(ENOSPC)`` / the free space is reported as
nearly none, and the read-only cases are skipped.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from pg import admin_connect, hpsearch, pg_url, start, stop, trials, write_study

import hpsearch.search.launch as launch_mod
import hpsearch.search.worker as worker_mod
import hpsearch.training.checkpoint as checkpoint_mod
import hpsearch.training.outputs as outputs_mod
import hpsearch.training.session as runner_mod
from hpsearch.errors import OutputError
from hpsearch.search import keys
from hpsearch.search.lifecycle import count_tickets
from hpsearch.search.storage import make_storage
from hpsearch.training.checkpoint import save_checkpoint

TrialState = optuna.trial.TrialState
KIB = 1024
TINY = ["--max-epochs", 1, "--no-estimate", "--set", "model.kwargs.base_width=4",
        "--set", "train.gallery_k=1"]


# ------------------------------------------------------------------------------------------- helpers
def _mount(folder: Path, *options: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    opts = ",".join(("size=3m", *options))
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(folder)], capture_output=True)
    return res.returncode == 0


def _fill(folder: Path, leave: int) -> None:
    """Fill ``folder``'s file system until about ``leave`` bytes are free."""
    free = shutil.disk_usage(folder).free
    with open(folder / ".filler", "wb") as fh:
        fh.write(b"\0" * max(0, free - leave))


@pytest.fixture
def small_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, bool]]:
    """``(folder, real)``: a 3 MiB tmpfs when it can be mounted (real=True), else a plain folder."""
    folder = tmp_path / "disk"
    real = _mount(folder)
    try:
        yield folder, real
    finally:
        if real:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _full(folder: Path, real: bool, leave: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Leave ``leave`` bytes free: really (tmpfs), or as the free-space checks and the writers see it."""
    if real:
        _fill(folder, leave)
        return
    real_usage, real_save = shutil.disk_usage, torch.save

    def usage(p):
        got = real_usage(p)
        return got._replace(free=leave) if str(p).startswith(str(folder)) else got

    monkeypatch.setattr(outputs_mod.shutil, "disk_usage", usage)

    def short_write(obj, f, *a, **k):  # what a full disk does to torch's writer: a part, then an error
        real_save({"part": 1}, f)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_mod.torch, "save", short_write)


def _error_line(output: str) -> str:
    lines = [ln for ln in output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, output
    assert "Traceback" not in output, output
    return lines[0]


def _states(url: str, name: str = "smoke") -> list[TrialState]:
    return [t.state for t in optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)]


def _partials(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".partial" in p.name or p.name.endswith(".tmp")]


# ------------------------------------------------------------------------- outputs before a trial is claimed
def test_run_out_under_a_file_claims_nothing_and_a_good_out_then_runs_the_whole_budget(
    tmp_path: Path, synth_data: Path, invoke
) -> None:
    (tmp_path / "afile").write_text("x")
    url = f"sqlite:///{tmp_path}/s.db"
    common = ["run", "--study", "smoke", "--data", synth_data, "--storage", url, "--n-trials", 2, *TINY]
    res = invoke(*common, "--out", tmp_path / "afile" / "runs")
    assert res.exit_code == 1
    line = _error_line(res.output)
    assert "afile/runs" in line and "ENOTDIR" in line, line
    assert _states(url) == [TrialState.WAITING] * 2  # the budget is untouched
    res = invoke(*common, "--out", tmp_path / "runs")
    assert res.exit_code == 0, res.output
    assert sorted(s.name for s in _states(url)) in (["COMPLETE"] * 2, ["COMPLETE", "PRUNED"], ["PRUNED"] * 2)


def test_run_out_on_a_read_only_mount_claims_nothing(tmp_path: Path, synth_data: Path, invoke) -> None:
    ro = tmp_path / "ro"
    if not _mount(ro, "ro"):
        pytest.skip("cannot mount a read-only tmpfs here")
    try:
        url = f"sqlite:///{tmp_path}/s.db"
        res = invoke("run", "--study", "smoke", "--data", synth_data, "--storage", url, "--n-trials", 2,
                     *TINY, "--out", ro / "runs")  # fmt: skip
    finally:
        subprocess.run(["umount", "-l", str(ro)], capture_output=True)
    assert res.exit_code == 1
    line = _error_line(res.output)
    assert str(ro / "runs") in line and "EROFS" in line, line
    assert _states(url) == [TrialState.WAITING] * 2


@pytest.mark.parametrize("target", ["--out", "--artifacts"])
def test_a_full_disk_is_refused_before_a_trial_is_claimed(
    target: str, tmp_path: Path, synth_data: Path, invoke, small_disk, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk, real = small_disk
    _full(disk, real, 256 * KIB, monkeypatch)
    url = f"sqlite:///{tmp_path}/s.db"
    other = "--artifacts" if target == "--out" else "--out"
    res = invoke("run", "--study", "smoke", "--data", synth_data, "--storage", url, "--n-trials", 2, *TINY,
                 target, disk / "x", other, tmp_path / "elsewhere")  # fmt: skip
    assert res.exit_code == 1
    line = _error_line(res.output)
    assert str(disk / "x") in line and "MiB free" in line, line
    assert _states(url) == [TrialState.WAITING] * 2


# ----------------------------------------------------------------------------- a fault during a trial
@pytest.mark.parametrize("target", ["--out", "--artifacts"])
def test_a_disk_that_fills_during_a_trial_gives_the_ticket_back_and_says_what_was_lost(
    target: str, tmp_path: Path, synth_data: Path, invoke, small_disk, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk, real = small_disk
    if target == "--artifacts" and not real:
        pytest.skip("the artifact writer's fault needs a real small disk")
    # The pre-claim checks pass (they are tested above); the disk is full when the trial writes.
    monkeypatch.setattr(worker_mod, "check_outputs", lambda *a, **k: None)
    monkeypatch.setattr(launch_mod, "check_outputs", lambda *a, **k: None)
    monkeypatch.setattr(runner_mod, "check_writable", lambda p, **k: Path(p))
    out = disk / "runs" if target == "--out" else tmp_path / "runs"
    arts = disk / "arts" if target == "--artifacts" else tmp_path / "arts"
    out.mkdir(parents=True, exist_ok=True)
    arts.mkdir(parents=True, exist_ok=True)
    _full(disk, real, 16 * KIB, monkeypatch)
    url = f"sqlite:///{tmp_path}/s.db"
    res = invoke("run", "--study", "smoke", "--data", synth_data, "--storage", url, "--n-trials", 2, *TINY,
                 "--out", out, "--artifacts", arts)  # fmt: skip
    assert res.exit_code == 1, res.output
    line = _error_line(res.output)
    assert str(disk) in line and "ENOSPC" in line, line
    assert "which is lost" in line and "ticket goes back" in line, line
    final = trials(url, "smoke")
    failed = [t for t in final if t.state == TrialState.FAIL]
    assert len(failed) == 1 and failed[0].user_attrs[keys.FAIL_REASON].startswith("output fault:")
    assert failed[0].user_attrs[keys.BEST_VAL_DICE] >= 0  # what it reached is on record
    retry = [t for t in final if t.system_attrs.get(keys.FAILED_TRIAL) == failed[0].number]
    assert len(retry) == 1 and retry[0].state == TrialState.WAITING
    assert count_tickets(optuna.load_study(study_name="smoke", storage=url)) == 2  # no ticket spent
    assert [t.state for t in final].count(TrialState.WAITING) == 2
    assert _partials(disk) == [] and _partials(tmp_path) == []
    assert not (out / "smoke" / f"trial_{failed[0].number:04d}").exists()  # its space is given back


def test_a_checkpoint_that_does_not_fit_leaves_the_earlier_one_whole_and_no_temporary_file(
    small_disk, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk, real = small_disk
    path = disk / "best.pt"
    save_checkpoint(path, state_dict={"w": torch.zeros(8)}, epoch=1, metrics={}, extra={})
    before = path.read_bytes()
    _full(disk, real, 32 * KIB, monkeypatch)
    with pytest.raises(OutputError) as err:
        save_checkpoint(path, state_dict={"w": torch.zeros(200_000)}, epoch=2, metrics={}, extra={})
    assert str(path) in str(err.value) and "ENOSPC" in str(err.value), err.value
    assert path.read_bytes() == before
    assert _partials(disk) == []


def test_train_on_a_full_disk_says_the_weights_are_lost_and_keeps_the_earlier_checkpoint(
    tmp_path: Path, synth_data: Path, invoke, small_disk, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk, real = small_disk
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "model: {name: unet, kwargs: {base_width: 4, depth: 2}}\n"
        "train: {epochs: 1, gallery_k: 0, max_steps_per_epoch: 1}\n"
        "data: {image_size: 64, augmentation: none, num_workers: 0}\n"
    )
    args = ["train", "--config", cfg, "--data", synth_data, "--out", disk / "run", "--no-resume"]
    assert invoke(*args).exit_code == 0
    before = (disk / "run" / "best.pt").read_bytes()
    monkeypatch.setattr(runner_mod, "check_writable", lambda p, **k: Path(p))
    _full(disk, real, 8 * KIB, monkeypatch)
    res = invoke(*args)
    assert res.exit_code == 1
    line = _error_line(res.output)
    assert str(disk / "run" / "best.pt") in line and "ENOSPC" in line and "are lost" in line, line
    assert (disk / "run" / "best.pt").read_bytes() == before
    assert _partials(disk) == []


# ------------------------------------------------------------------------ unwritable folders, one line
@pytest.mark.parametrize("command", ["train", "export"])
@pytest.mark.parametrize("how", ["under-a-file", "read-only"])
def test_train_and_export_to_an_unwritable_out_give_one_line(
    command: str, how: str, tmp_path: Path, synth_data: Path, invoke
) -> None:
    if how == "under-a-file":
        (tmp_path / "afile").write_text("x")
        out, cause = tmp_path / "afile" / "o", "ENOTDIR"
    else:
        if not _mount(tmp_path / "ro", "ro"):
            pytest.skip("cannot mount a read-only tmpfs here")
        out, cause = tmp_path / "ro" / "o", "EROFS"
    try:
        if command == "train":
            cfg = tmp_path / "c.yaml"
            cfg.write_text("model: {name: unet, kwargs: {base_width: 4, depth: 2}}\ntrain: {epochs: 1}\n")
            res = invoke("train", "--config", cfg, "--data", synth_data, "--out", out)
        else:
            url = f"sqlite:///{tmp_path}/e.db"
            study = optuna.create_study(study_name="e", storage=url)
            study.add_trial(optuna.trial.create_trial(value=0.5, user_attrs={keys.CONFIG: {}}))
            res = invoke("export", "--storage", url, "--study", "e", "--out", out / "best.yaml")
    finally:
        subprocess.run(["umount", "-l", str(tmp_path / "ro")], capture_output=True)
    assert res.exit_code == 1, res.output
    line = _error_line(res.output)
    assert str(out) in line and cause in line, line


def test_sqlite_in_a_read_only_folder_or_on_a_full_disk_gives_one_line(
    tmp_path: Path, synth_data: Path, invoke, small_disk
) -> None:
    disk, real = small_disk
    if not real:
        pytest.skip("needs a real tmpfs (the SQLite library writes by itself)")
    _fill(disk, 0)
    ro = tmp_path / "ro"
    if not _mount(ro, "ro"):
        pytest.skip("cannot mount a read-only tmpfs here")
    try:
        for folder, cause in ((ro, "EROFS"), (disk, "ENOSPC")):
            url = f"sqlite:///{folder}/h.db"
            res = invoke("create", "--study", "smoke", "--data", synth_data, "--storage", url)
            assert res.exit_code == 1, res.output
            line = _error_line(res.output)
            assert f"{folder}/h.db" in line and cause in line, line
    finally:
        subprocess.run(["umount", "-l", str(ro)], capture_output=True)


# -------------------------------------------------------------------------------- options and budget
@pytest.mark.parametrize("command", ["run", "worker"])
@pytest.mark.parametrize("value", ["-5", "0"])
def test_a_timeout_that_is_not_positive_is_a_usage_error(
    command: str, value: str, tmp_path: Path, synth_data: Path, invoke
) -> None:
    url = f"sqlite:///{tmp_path}/t.db"
    res = invoke(command, "--study", "smoke", "--data", synth_data, "--storage", url, "--timeout", value)
    assert res.exit_code == 2
    assert "--timeout" in res.output and f"got {float(value):g}" in res.output and "> 0" in res.output
    assert not (tmp_path / "t.db").exists()


def test_create_says_truthfully_what_a_new_n_trials_did_to_the_budget(
    tmp_path: Path, synth_data: Path, invoke
) -> None:
    url = f"sqlite:///{tmp_path}/b.db"
    base = ["create", "--study", "smoke", "--data", synth_data, "--storage", url, "--n-trials"]
    assert invoke(*base, 16).exit_code == 0
    res = invoke(*base, 18)
    assert res.exit_code == 0 and "budget raised from 16 to 18 trials (2 ticket(s) added)" in res.output
    res = invoke(*base, 10)
    assert res.exit_code == 0 and "the budget stays 18" in res.output, res.output
    res = invoke(*base, 18)
    assert res.exit_code == 0 and "already exists (unchanged)" in res.output, res.output
    assert count_tickets(optuna.load_study(study_name="smoke", storage=url)) == 18


# ------------------------------------------------------------------------------------------ the data
def _copy(synth_data: Path, dest: Path) -> Path:
    shutil.copytree(synth_data, dest)
    return dest


@pytest.mark.parametrize("kind", ["loop", "dangling"])
def test_a_broken_symlink_in_images_is_named_by_check_and_train(
    kind: str, tmp_path: Path, synth_data: Path, invoke
) -> None:
    data = _copy(synth_data, tmp_path / "d")
    images = data / "images"
    if kind == "loop":
        os.symlink("b.png", images / "a.png")
        os.symlink("a.png", images / "b.png")
    else:
        os.symlink("gone.png", images / "a.png")
    res = invoke("data", "check", "--data", data, "--no-progress")
    assert res.exit_code == 1
    words = "symlink loop" if kind == "loop" else "dangling symlink"
    assert f"{images / 'a.png'}: " in res.output and words in res.output, res.output
    assert "Traceback" not in res.output
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: {name: unet, kwargs: {base_width: 4, depth: 2}}\ntrain: {epochs: 1}\n")
    res = invoke("train", "--config", cfg, "--data", data, "--out", tmp_path / "o")
    assert res.exit_code == 1
    line = _error_line(res.output)
    assert str(images / "a.png") in line and words in line, line


def test_a_dataset_of_empty_masks_is_refused_unless_the_flag_says_it_is_intended(
    tmp_path: Path, synth_data: Path, invoke
) -> None:
    import cv2

    data = _copy(synth_data, tmp_path / "d")
    for mask in (data / "masks").iterdir():
        cv2.imwrite(str(mask), np.zeros((64, 64), np.uint8))
    res = invoke("data", "check", "--data", data, "--no-progress")
    assert res.exit_code == 1
    line = _error_line(res.output)
    assert f"{data / 'masks'}: all 24 masks are empty" in line and "--allow-empty-masks" in line, line
    assert invoke("data", "check", "--data", data, "--no-progress", "--allow-empty-masks").exit_code == 0
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "model: {name: unet, kwargs: {base_width: 4, depth: 2}}\n"
        "train: {epochs: 1, gallery_k: 0, max_steps_per_epoch: 1}\n"
        "data: {image_size: 64, augmentation: none, num_workers: 0}\n"
    )
    res = invoke("train", "--config", cfg, "--data", data, "--out", tmp_path / "o", "--allow-empty-masks")
    assert res.exit_code == 0, res.output
    # That passed check is remembered (by the data's fingerprint); without the flag it must still refuse.
    res = invoke("train", "--config", cfg, "--data", data, "--out", tmp_path / "o")
    assert res.exit_code == 1 and "all 24 masks are empty" in _error_line(res.output)


# --------------------------------------------------------------------------- workers starting together
def _open(url: str, barrier, results) -> None:
    barrier.wait()
    try:
        make_storage(url).engine.dispose()
        results.put("ok")
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        results.put(f"{type(exc).__name__}: {exc}")


def _race(url: str, n: int = 4) -> list[str]:
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_open, args=(url, barrier, results)) for _ in range(n)]
    for p in procs:
        p.start()
    got = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    return got


def test_four_processes_opening_a_new_sqlite_storage_together_all_open_20_times(tmp_path: Path) -> None:
    for i in range(20):
        got = _race(f"sqlite:///{tmp_path}/race{i}.db")
        assert got == ["ok"] * 4, (i, got)


# Optuna's schema takes seconds a round to create on PostgreSQL; HPSEARCH_RACE_ROUNDS=20 for the full count.
PG_ROUNDS = int(os.environ.get("HPSEARCH_RACE_ROUNDS", "5"))


@pytest.mark.postgres
def test_four_processes_opening_a_new_postgres_storage_together_all_open_every_time() -> None:
    names = [f"hpsearch_test_{uuid.uuid4().hex[:8]}" for _ in range(PG_ROUNDS)]
    with admin_connect() as con:
        for name in names:
            con.execute(f'CREATE DATABASE "{name}"')
    try:
        for i, name in enumerate(names):
            got = _race(pg_url(name))
            assert got == ["ok"] * 4, (i, got)
    finally:
        with admin_connect() as con:
            for name in names:
                con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.subprocess
def test_four_workers_started_together_on_a_new_sqlite_file_all_start_and_spend_the_budget(
    tmp_path: Path, synth_data: Path
) -> None:
    url = f"sqlite:///{tmp_path}/new.db"
    study = write_study(tmp_path, budget={"n_trials": 4})
    procs = []
    try:
        for i in range(4):
            procs.append(start(hpsearch("worker", "--study", study, "--storage", url, "--data", synth_data,
                                        "--out", tmp_path / "runs", "--worker-index", i, "--quiet"),
                               tmp_path / f"w{i}.log"))  # fmt: skip
        codes = [p.wait(timeout=300) for p in procs]
    finally:
        stop(procs)
    logs = "\n".join((tmp_path / f"w{i}.log").read_text() for i in range(4))
    assert codes == [0, 0, 0, 0], logs
    states = [t.state for t in trials(url)]
    assert len(states) == 4 and states.count(TrialState.COMPLETE) == 4, states


def test_a_worker_killed_right_after_claiming_a_trial_does_not_strand_its_ticket(tmp_path: Path) -> None:
    """Claiming writes the first heartbeat with it, so a trial claimed by a worker that dies before its
    heartbeat thread starts still goes stale and is retried (found by benchmarks/soak.py)."""
    from hpsearch.search.storage import StorageOptions

    url = f"sqlite:///{tmp_path}/k.db"
    storage = make_storage(url, StorageOptions(heartbeat_interval=1, grace_period=2))
    study = optuna.create_study(study_name="k", storage=storage)
    study.enqueue_trial({}, user_attrs={keys.TICKET: True})
    study_id = storage.get_study_id_from_name("k")
    [waiting] = storage.get_all_trials(study_id, states=(TrialState.WAITING,))
    waiting_id = storage.get_trial_id_from_study_id_trial_number(study_id, waiting.number)
    assert storage.set_trial_state_values(waiting_id, TrialState.RUNNING)  # the claim, then "SIGKILL"
    time.sleep(3.5)
    optuna.storages.fail_stale_trials(study)
    final = study.get_trials(deepcopy=False)
    assert [t.state for t in final] == [TrialState.FAIL, TrialState.WAITING], final
    assert final[1].system_attrs[keys.FAILED_TRIAL] == final[0].number


@pytest.mark.parametrize("then", ["returns", "writes an attribute"])
def test_a_trial_failed_as_stale_while_it_ran_does_not_crash_its_worker(then: str, tmp_path: Path) -> None:
    """On an overloaded host a heartbeat can come later than --grace, and a peer fails the live trial as
    stale (and queues its retry). Its worker must go on, not die on Optuna's ``Cannot tell a FAIL trial``
    (the soak benchmark's first run: 62 of 84 worker starts ended in that traceback)."""
    from hpsearch.search.spec import load_study_spec
    from hpsearch.search.worker import run_trials, worker_study

    url = f"sqlite:///{tmp_path}/t.db"
    storage = make_storage(url)
    study = optuna.create_study(study_name="t", storage=storage, direction="maximize")
    for _ in range(2):
        study.enqueue_trial({}, user_attrs={keys.TICKET: True})
    handle = worker_study("t", storage, load_study_spec("smoke"), seed_offset=0, budgeted=True)

    def objective(trial: optuna.Trial) -> float:
        if trial.number == 0:  # what a peer's fail_stale_trials does to it
            study_id = storage.get_study_id_from_name("t")
            storage.set_trial_state_values(
                storage.get_trial_id_from_study_id_trial_number(study_id, trial.number), TrialState.FAIL
            )
            if then == "writes an attribute":
                trial.set_user_attr("late", 1)
        return 0.5

    summary = run_trials(handle, objective)
    assert summary.states == {"FAIL": 1, "COMPLETE": 1}, summary
    assert [t.state for t in study.get_trials(deepcopy=False)] == [TrialState.FAIL, TrialState.COMPLETE]
