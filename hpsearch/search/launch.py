"""Run a search from one command: in this process, or in N local worker processes; Ctrl-C; the outcome.

This is what ``hpsearch run`` does, as a library call: open (or create) the study, run its trials with a
live display, and report the counts, the best trial and, after Ctrl-C, the command that resumes it.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import optuna

from hpsearch.search.lifecycle import PreparedStudy, open_study
from hpsearch.search.live import Board, live_board
from hpsearch.search.options import SearchOptions, set_args
from hpsearch.search.storage import mask_url
from hpsearch.search.worker import check_outputs, run_worker

# Exit codes of a worker process that are not a failure: done, or stopped by Ctrl-C.
CLEAN_EXITS = (0, 130)


def _worker_command(
    opts: SearchOptions, prepared: PreparedStudy, index: int, *, quiet: bool = True
) -> list[str]:
    """``python -m hpsearch worker ...`` with every option that shapes a trial spelled out. ``quiet``: the
    parent shows a live table, so the worker prints no per-epoch lines into it."""
    cmd = [
        sys.executable, "-m", "hpsearch", "worker",
        "--study", prepared.study_name,
        "--storage", opts.storage,
        "--data", str(prepared.data_dir),
        "--worker-index", str(index),
        "--out", str(prepared.out_root.parent),
        *(["--quiet"] if quiet else []),
        "--scale", prepared.scale,
        "--heartbeat", str(opts.storage_options.heartbeat_interval),
        "--grace", str(opts.storage_options.grace_period),
    ]  # fmt: skip
    for flag, value in (
        ("--artifacts", opts.artifacts),
        ("--device", opts.device),
        ("--max-epochs", opts.max_epochs),
        ("--timeout", opts.timeout),
    ):
        if value:
            cmd += [flag, str(value)]
    return cmd + set_args(opts.overrides)


def spawn_workers(
    opts: SearchOptions, prepared: PreparedStudy, n: int, *, quiet: bool = True
) -> list[subprocess.Popen]:
    """Start ``n`` worker processes on this machine; with several GPUs, pin them round-robin."""
    try:
        import torch

        n_gpu = torch.cuda.device_count()
    except Exception:  # no usable CUDA: CPU workers
        n_gpu = 0
    procs = []
    for i in range(n):
        env = dict(os.environ)
        if n_gpu > 1:
            env["CUDA_VISIBLE_DEVICES"] = str(i % n_gpu)
        if n_gpu == 0 and "OMP_NUM_THREADS" not in env:
            # CPU workers share the cores: N processes with a thread per core each oversubscribe the CPU
            # (measured: 4 workers on 2 cores ran the same study ~5x slower).
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // n))
        procs.append(subprocess.Popen(_worker_command(opts, prepared, i, quiet=quiet), env=env))
    return procs


def wait_workers(
    procs: list[subprocess.Popen], poll: Callable[[], None] | None = None, every: float = 1.0
) -> list[int]:
    """Wait for all workers, calling ``poll`` (e.g. a live display refresh) every ``every`` seconds."""
    while any(p.poll() is None for p in procs):
        if poll is not None:
            poll()
        time.sleep(every)
    if poll is not None:
        poll()
    return [p.returncode for p in procs]


def resume_hint(opts: SearchOptions, prepared: PreparedStudy | None = None) -> str:
    """The command that resumes this study: the same budget, outputs and overrides."""
    parts = ["hpsearch", "run", "--study", opts.study]
    if not opts.storage_from_env:  # from the environment: it is still there, and its password stays there
        parts += ["--storage", mask_url(opts.storage)]
    for flag, value in (
        ("--data", opts.data),
        ("--study-name", opts.study_name),
        ("--n-trials", opts.n_trials),
        ("--out", opts.out),
        ("--artifacts", opts.artifacts),
        ("--device", opts.device),
        ("--max-epochs", opts.max_epochs),
        ("--scale", opts.scale),
        ("--timeout", opts.timeout),
    ):
        if value is not None and (value or flag == "--n-trials"):
            parts += [flag, str(value)]
    parts += set_args(opts.overrides)
    return shlex.join(parts)


@dataclass
class SearchOutcome:
    """What ``run_search`` did: enough for the CLI to print and to choose its exit code."""

    prepared: PreparedStudy
    ran: bool = False  # False for ``--n-trials 0``: the study was only created or checked
    states: dict[str, int] = field(default_factory=dict)  # trials in the study by state
    best: optuna.trial.FrozenTrial | None = None
    interrupted: bool = False
    worker_exit_codes: list[int] = field(default_factory=list)  # of worker processes, if any
    resume_command: str | None = None  # set after Ctrl-C

    @property
    def failed_workers(self) -> bool:
        """Whether a worker process ended other than done or interrupted."""
        return any(code not in CLEAN_EXITS for code in self.worker_exit_codes)


def _run_processes(
    opts: SearchOptions, prepared: PreparedStudy, n: int, board: Board
) -> tuple[bool, list[int]]:
    """N worker processes; returns (interrupted, exit codes). Ctrl-C reaches them too: wait for them."""
    procs = spawn_workers(opts, prepared, n, quiet=board.live is not None)
    handle = optuna.load_study(study_name=prepared.study_name, storage=prepared.storage)
    try:
        return False, wait_workers(procs, poll=lambda: board.poll(handle))
    except KeyboardInterrupt:
        return True, wait_workers(procs)


def _study_outcome(outcome: SearchOutcome) -> SearchOutcome:
    prepared = outcome.prepared
    study = optuna.load_study(study_name=prepared.study_name, storage=prepared.storage)
    for t in study.get_trials(deepcopy=False):
        outcome.states[t.state.name] = outcome.states.get(t.state.name, 0) + 1
    try:
        outcome.best = study.best_trial
    except ValueError:  # no completed trial yet
        outcome.best = None
    return outcome


def run_search(
    opts: SearchOptions,
    *,
    workers: int = 1,
    live: bool | None = None,
    on_open: Callable[[PreparedStudy], None] | None = None,
    say: Callable[[str], None] | None = None,
    estimate: bool = True,
) -> SearchOutcome:
    """Create or resume the study and run its trials here (``workers=1``) or in ``workers`` processes.

    ``on_open`` hears about the study once it is open, before any trial. With ``estimate``, real training
    steps are timed first and ``say`` gets the forecast of the search (``cost.prepare_search``), which also
    decides a resource study's length plan.
    Ctrl-C stops the trials cleanly
    (see ``run_trials``) and the outcome then carries the command that resumes the study.
    """
    prepared = open_study(opts)
    if on_open is not None:
        on_open(prepared)
    outcome = SearchOutcome(prepared)
    if opts.n_trials == 0:
        return outcome
    check_outputs(prepared, opts.artifacts)  # once here, not once per worker process: one line, no trial
    from hpsearch.search.cost import prepare_search

    # The length plan of a resource study is decided (and stored) here, before any worker starts.
    prepare_search(prepared, opts, workers=workers, estimate=estimate, say=say or print)
    with live_board(f"study {prepared.study_name}", enabled=live, metric=prepared.spec.metric) as board:
        if workers == 1:
            summary, _ = run_worker(opts, worker_index=0, on_event=board.on_event, prepared=prepared)
            outcome.interrupted = summary.interrupted
        else:
            outcome.interrupted, outcome.worker_exit_codes = _run_processes(opts, prepared, workers, board)
    outcome.ran = True
    if outcome.interrupted:
        outcome.resume_command = resume_hint(opts, prepared)
    return _study_outcome(outcome)
