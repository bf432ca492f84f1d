"""The worker loop: claim a budget ticket, run its trial, repeat; survive Ctrl-C, dead peers, storage hiccups.

A worker only runs trials it claimed from the study's queue of WAITING tickets (see ``lifecycle.py``), with
its own sampler seed stream, and never leaves a trial RUNNING behind: Ctrl-C or a storage error marks the
trial FAIL and puts its ticket back as a re-run of the same parameters.
"""

from __future__ import annotations

import enum
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from optuna.trial import TrialState

from hpsearch.errors import ConfigError, OutputError, StorageError
from hpsearch.search import keys
from hpsearch.search.lifecycle import Event, PreparedStudy, open_study
from hpsearch.search.objective import INTERRUPTED, Objective
from hpsearch.search.options import SearchOptions
from hpsearch.search.plan import LengthPlan, default_plan, stored_plan
from hpsearch.search.spec import StudySpec, study_epochs, study_pruner
from hpsearch.search.storage import STORAGE_ERRORS, artifact_dir, artifact_store, heartbeat_ages, sqlite_path
from hpsearch.search.strategies import build_sampler
from hpsearch.training.checkpoint import checkpoint_bytes
from hpsearch.training.outputs import MIB, check_writable

TAKEN_OVER = "failed as stale by another worker (its heartbeat came later than --grace)"
OUTPUT_FAULT = "output fault"  # a disk or folder fault: the operator's, so the trial's ticket goes back
_STARTED = (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class BudgetSpent(Exception):
    """No WAITING ticket left: the study's budget is used up."""


class WorkerStudy(optuna.Study):
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
    study_name: str,
    storage: optuna.storages.BaseStorage,
    spec: StudySpec,
    *,
    seed_offset: int,
    budgeted: bool,
    plan: LengthPlan | None = None,
) -> WorkerStudy:
    """A study handle for one worker with its own sampler seed stream, so workers don't repeat each other.

    The seed is the spec's seed + 7919 * worker index, plus a term for the trials the study already ran: a
    resumed study or a restarted worker (same index) would otherwise replay the same random start-up points.
    A fresh study's seeds are unchanged by it.
    """
    study_id = storage.get_study_id_from_name(study_name)
    started = len(storage.get_all_trials(study_id, deepcopy=False, states=_STARTED))
    seed = (spec.sampler.seed + 7919 * seed_offset + 104729 * started) % 2**32  # numpy takes < 2**32
    sampler = build_sampler(spec.sampler.name, seed, spec.sampler.kwargs)
    pruner = study_pruner(spec, plan)
    study = WorkerStudy(study_name=study_name, storage=storage, sampler=sampler, pruner=pruner)
    study.budgeted = budgeted
    return study


class _Step(enum.Enum):
    RAN = "ran"  # a trial ran (whatever its state)
    AGAIN = "again"  # the budget is spent but a dead peer's trial was re-queued: claim it
    SPENT = "spent"
    INTERRUPTED = "interrupted"


class _Abort(BaseException):
    """Ctrl-C or an output fault inside a trial, carried past Optuna.

    Optuna would log a traceback for it and record the trial FAIL with its ticket used up. Deriving from
    BaseException (not Exception, not KeyboardInterrupt) lets it pass Optuna untouched: the trial is still
    RUNNING when ``_run_one`` catches it, and ``_abandon`` fails it and puts its ticket back.
    """

    def __init__(self, reason: str, error: OutputError | None = None, *, stop: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error
        self.stop = stop  # False: the worker goes on with its next trial


def _guard(objective: Callable[[optuna.Trial], float]) -> Callable[[optuna.Trial], float]:
    def guarded(trial: optuna.Trial) -> float:
        try:
            return objective(trial)
        except KeyboardInterrupt:
            raise _Abort(INTERRUPTED) from None
        except OutputError as exc:
            raise _Abort(f"{OUTPUT_FAULT}: {exc}"[:500], exc) from None
        except optuna.exceptions.UpdateFinishedTrialError:
            # A peer failed this trial as stale while it still ran (its heartbeat came late) and queued the
            # retry that re-runs it; recording it now would fail. Not a crash: go on with the next trial.
            raise _Abort(TAKEN_OVER, stop=False) from None

    return guarded


def _run_one(
    study: WorkerStudy,
    objective: Callable[[optuna.Trial], float],
    record: Callable[[optuna.Study, optuna.trial.FrozenTrial], None],
) -> _Step:
    """Claim and run one trial. Trial failures are caught by Optuna (FAIL with a reason); storage errors
    outside the objective propagate."""
    study.last_trial_id = None
    try:
        study.optimize(objective, n_trials=1, catch=(Exception,), callbacks=[record])
    except _Abort as stop:
        _abandon(study, reason=stop.reason)
        if stop.error is not None:
            raise stop.error from None  # the operator must act: this worker stops, with one line
        if stop.stop:
            return _Step.INTERRUPTED
        _record_taken_over(study, record)
    except (ValueError, AssertionError):
        # Optuna could not tell the trial (``Cannot tell a FAIL trial``, then its ``Should not reach``): a
        # peer failed it as stale while it ran, and its retry re-runs it. Anything else is a real error.
        if not _taken_over(study):
            raise
        _record_taken_over(study, record)
    except BudgetSpent:
        # A trial whose worker died shortly before the budget ran out is not stale yet; leaving now would
        # strand it RUNNING until some later worker came by. Wait for it to go stale and re-run it.
        return _Step.AGAIN if _await_silent_trials(study) else _Step.SPENT
    except KeyboardInterrupt:
        _abandon(study)
        return _Step.INTERRUPTED
    return _Step.RAN


def _record_taken_over(
    study: WorkerStudy, record: Callable[[optuna.Study, optuna.trial.FrozenTrial], None]
) -> None:
    assert study.last_trial_id is not None
    record(study, study._storage.get_trial(study.last_trial_id))  # counted (and shown) as the FAIL it is


def run_trials(
    study: WorkerStudy,
    objective: Callable[[optuna.Trial], float],
    *,
    max_trials: int | None = None,
    timeout: float | None = None,
    on_trial_end: Callable[[optuna.trial.FrozenTrial], None] | None = None,
    before_claim: Callable[[], None] | None = None,
) -> WorkerSummary:
    """Run trials one at a time until the budget, ``max_trials`` or ``timeout`` is spent.

    Trial failures are caught by Optuna (FAIL with a reason) and the loop goes on. Ctrl-C marks the current
    trial FAIL (never a zombie RUNNING trial), puts a replacement ticket back, and stops. A storage call that
    fails in Optuna's own bookkeeping (claiming or telling a trial while the database restarts) does the same
    to that trial and goes on; three such failures in a row end the worker with a StorageError. When the
    budget is spent, the worker still checks that no RUNNING trial has silently died before it leaves
    (``_await_silent_trials``). ``before_claim`` runs before every claim (the output checks); what it
    raises ends the worker before it takes a ticket. A disk or folder fault inside a trial (``OutputError``)
    fails the trial, puts its ticket back and ends the worker with that error.
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

    guarded = _guard(objective)
    storage_errors = 0
    while max_trials is None or len(summary.trials) < max_trials:
        if timeout is not None and time.monotonic() - t0 >= timeout:
            break
        study.last_trial_id = None  # a hiccup before the claim must not re-queue the previous trial again
        try:
            if before_claim is not None:
                before_claim()  # inside: a storage hiccup while it counts the tickets is handled below
            step = _run_one(study, guarded, record)
        except STORAGE_ERRORS as exc:
            # The connection died mid-call (server restart, failover, network). Without this the worker would
            # exit and leave the trial it was claiming RUNNING for good (it had no heartbeat yet, so it never
            # goes stale). The next call reconnects: make_storage waits for the server to come back.
            storage_errors += 1
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            _abandon(study, reason=f"storage error: {first[:200]}")
            if storage_errors >= 3:
                raise StorageError(f"the storage keeps failing: {first}") from None
            continue
        if step is _Step.RAN:
            storage_errors = 0
        elif step is not _Step.AGAIN:
            summary.interrupted = step is _Step.INTERRUPTED
            break
    summary.wall_time_s = time.monotonic() - t0
    return summary


def _await_silent_trials(study: WorkerStudy) -> bool:
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
        except STORAGE_ERRORS:
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


def _abandon(study: WorkerStudy, reason: str = INTERRUPTED) -> None:
    """After Ctrl-C (or a storage error outside the objective): the trial must not stay RUNNING, and its
    budget ticket goes back to the queue as a re-run of the same parameters."""
    tid = study.last_trial_id
    if tid is None:
        return
    storage = study._storage
    trial = storage.get_trial(tid)
    if trial.state == TrialState.RUNNING:  # stopped outside the objective (e.g. while claiming or telling)
        storage.set_trial_user_attr(tid, keys.FAIL_REASON, reason)
        storage.set_trial_state_values(tid, state=TrialState.FAIL)
        trial = storage.get_trial(tid)
    if trial.state != TrialState.FAIL or trial.user_attrs.get(keys.FAIL_REASON) != reason:
        return  # it finished before the interrupt: its ticket is used
    if trial.user_attrs.get(keys.TICKET):
        # Re-run the same parameters, marked like a heartbeat retry so that count_tickets sees no new ticket.
        study.add_trial(
            optuna.trial.create_trial(
                state=TrialState.WAITING,
                params=trial.params,
                distributions=trial.distributions,
                user_attrs={keys.TICKET: True},
                system_attrs={keys.FAILED_TRIAL: trial.system_attrs.get(keys.FAILED_TRIAL, trial.number)},
            )
        )


def study_plan(prepared: PreparedStudy, attrs: dict, opts: SearchOptions) -> LengthPlan | None:
    """The length plan stored with a resource study; a study that has none yet (made by ``create``, joined
    by workers) gets the plan without a time budget, stored so that every worker uses the same rungs."""
    spec = prepared.spec
    if spec.resource is None:
        return None
    plan = stored_plan(attrs)
    if plan is None:
        plan = default_plan(spec.resource, study_epochs(spec, opts.overrides), opts.max_epochs)
        sid = prepared.storage.get_study_id_from_name(prepared.study_name)
        prepared.storage.set_study_user_attr(sid, keys.LENGTH_PLAN, plan.to_json())
    return plan


def _taken_over(study: WorkerStudy) -> bool:
    """Whether the trial this worker was running has been finished by someone else (failed as stale)."""
    if study.last_trial_id is None:
        return False
    return study._storage.get_trial(study.last_trial_id).state.is_finished()


def _something_to_claim(study: WorkerStudy) -> bool:
    # A worker that finds the budget spent leaves with exit 0 whatever the disk: the checks are for claims.
    return not study.budgeted or study._storage.get_n_trials(study._study_id, state=TrialState.WAITING) > 0


def check_outputs(prepared: PreparedStudy, artifacts: str | Path | None) -> None:
    """Every folder a trial writes to takes a file and has room for a checkpoint: the trial output root, the
    artifact store and (SQLite) the database's folder. Raises ``OutputError`` naming the folder."""
    if prepared.need_bytes is None:  # once per worker: it builds the study's model to weigh it
        base = prepared.base
        prepared.need_bytes = (checkpoint_bytes(base) if base is not None else 0) + MIB
    check_writable(prepared.out_root, what="trial output folder", need_bytes=prepared.need_bytes)
    check_writable(artifact_dir(prepared.storage_url, artifacts), what="artifact store", need_bytes=MIB)
    db = sqlite_path(prepared.storage_url)
    if db is not None:
        check_writable(db.parent, what="folder of the SQLite storage", need_bytes=MIB)


def run_worker(
    opts: SearchOptions,
    *,
    worker_index: int,
    max_trials: int | None = None,
    on_event: Callable[[Event], None] | None = None,
    prepared: PreparedStudy | None = None,
) -> tuple[WorkerSummary, PreparedStudy]:
    """Join the study (``open_study``) and run trials until its budget, ``max_trials`` or ``opts.timeout``
    is spent. ``worker_index`` picks the sampler's seed stream and names the worker in the trial records."""
    if prepared is None:
        prepared = open_study(opts, joining=True)
    attrs = prepared.study_attrs()
    budgeted = keys.BUDGET_N_TRIALS in attrs
    plan = study_plan(prepared, attrs, opts)
    study = worker_study(
        prepared.study_name,
        prepared.storage,
        prepared.spec,
        seed_offset=worker_index,
        budgeted=budgeted,
        plan=plan,
    )
    check_outputs(prepared, opts.artifacts)  # before joining the queue: nothing is claimed on a bad disk
    # A resource study's trials train to the plan's top length (the pruner stops most of them earlier).
    caps = [c for c in (opts.max_epochs, plan.top if plan else None) if c is not None]
    ctx = prepared.trial_context(
        max_epochs=min(caps) if caps else None,
        artifact_store=artifact_store(prepared.storage_url, opts.artifacts),
        worker=str(worker_index),
        on_event=on_event,
        # --timeout is a wall-time budget: no trial starts after it; a running one stops at its next epoch.
        deadline=time.monotonic() + opts.timeout if opts.timeout is not None else None,
    )
    summary = run_trials(
        study,
        Objective(ctx),
        max_trials=max_trials,
        timeout=opts.timeout,
        before_claim=lambda: _something_to_claim(study) and check_outputs(prepared, opts.artifacts),
    )
    return summary, prepared
