"""The Optuna objective: sample a config, run ``fit`` with a pruning callback, record everything.

Together with ``space.py`` this is the only code that touches ``optuna.Trial``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch

from hpsearch.errors import NonFiniteLossError, OutputError
from hpsearch.search import keys
from hpsearch.search.lifecycle import TrialContext
from hpsearch.search.notes import config_differences, trial_note
from hpsearch.search.space import suggest
from hpsearch.training.config import RunConfig, resolve_run_config
from hpsearch.training.device import describe_device, release_memory, resolve_device
from hpsearch.training.loop import best_epoch_row, improves
from hpsearch.training.manifest import hardware
from hpsearch.training.metric_table import METRICS
from hpsearch.training.session import PreparedData, TrainOutcome, prepare_data, train_from_config
from hpsearch.training.viz import plot_curves

# A trial's FAIL reason when Ctrl-C stopped it.
INTERRUPTED = "interrupted (Ctrl-C)"


class TrialOOM(RuntimeError):
    """A trial ran out of accelerator memory; the study continues with ``fail_reason=oom``."""


def is_oom(exc: BaseException) -> bool:
    """CUDA raises ``torch.OutOfMemoryError``; MPS raises a RuntimeError that says so."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


class PruningCallback:
    """Reports the study's metric to Optuna every epoch and raises ``TrialPruned`` when the pruner says so.

    What is reported is the *running best* of the metric so far, not the epoch's own value: the objective
    returns the best epoch's value, so the pruner compares like with like, and a trial whose last epoch
    dipped is judged by the best it reached. The pruner is never consulted at the trial's last epoch
    (``epochs``): a trial that trained to its end is finished, not pruned, and counts for the export.
    """

    def __init__(
        self,
        trial: optuna.Trial,
        metric: str,
        *,
        direction: str | None = None,
        on_epoch: Callable[[int, dict[str, float]], None] | None = None,
        epochs: int | None = None,
    ) -> None:
        self.trial = trial
        self.metric = metric
        self.epochs = epochs
        self.history: list[dict[str, float]] = []
        self.best: float | None = None
        self.direction = direction or METRICS[metric].direction  # None: the metric's own
        self.on_epoch = on_epoch

    def __call__(self, epoch: int, metrics: dict[str, float]) -> None:
        self.history.append(metrics)
        value = float(metrics[self.metric])
        if self.best is None or improves(value, self.best, self.direction):  # fit's rule for its best epoch
            self.best = value
        self.trial.report(self.best, epoch)
        if self.on_epoch is not None:
            self.on_epoch(epoch, metrics)
        if (self.epochs is None or epoch < self.epochs) and self.trial.should_prune():
            raise optuna.TrialPruned(
                f"pruned at epoch {epoch} with best {self.metric}={self.best:.4f} so far"
            )


def record_partial(
    trial: optuna.Trial,
    history: list[dict[str, float]],
    *,
    metric: str,
    direction: str,
    started: float,
    key: str,
    reason: str,
) -> dict[str, float] | None:
    """What a pruned or failed trial leaves: why, its curves, and its best epoch by the study's metric (the
    one ``fit`` would have kept); returns that epoch's history row (None: no epoch has a value)."""
    trial.set_user_attr(key, reason)
    trial.set_user_attr(keys.HISTORY, json.loads(json.dumps(history)))
    trial.set_user_attr(keys.TRIAL_WALL_S, time.perf_counter() - started)
    trial.set_user_attr(keys.EPOCHS_RUN, len(history))
    best = best_epoch_row(history, metric, direction)
    if best is not None:
        trial.set_user_attr(keys.BEST_VAL_DICE, best["val_dice"])
        trial.set_user_attr(keys.BEST_VALUE, float(best[metric]))
        if "val_iou" in best:
            trial.set_user_attr(keys.BEST_VAL_IOU, best["val_iou"])
        trial.set_user_attr(keys.BEST_EPOCH, int(best["epoch"]))
    return best


def build_trial_config(ctx: TrialContext, params: dict[str, Any], trial_number: int | None) -> RunConfig:
    """Defaults < study ``fixed`` < sampled params < CLI overrides < options < scale < cap
    (``resolve_run_config``); seed = study seed + trial number (None: the study's reference config)."""
    return resolve_run_config(
        ctx.spec.run_base(),
        params=params,
        overrides=ctx.overrides,
        device=ctx.device,
        data_path=ctx.data_dir,
        seed=None if trial_number is None else ctx.spec.seed + trial_number,
        max_epochs=ctx.max_epochs,
        scale=ctx.scale,
        source=f"study '{ctx.spec.name}'",
    )


def _drop_empty(out_dir: Path) -> None:
    # A pruned or failed trial writes no checkpoint; don't leave an empty folder behind.
    if out_dir.is_dir() and not any(out_dir.iterdir()):
        out_dir.rmdir()


@dataclass
class _Running:
    """One trial in flight: what the failure paths need to record it."""

    trial: optuna.Trial
    cfg: RunConfig
    callback: PruningCallback
    out_dir: Path
    started: float


class Objective:
    """Callable objective for ``study.optimize``; prepares each distinct dataset/split once per worker."""

    def __init__(self, ctx: TrialContext) -> None:
        self.ctx = ctx
        self._data: dict[str, PreparedData] = {}
        self._reference: dict[str, Any] | None = None

    def reference(self) -> dict[str, Any]:
        """The study's fixed part as resolved for this worker: what a trial's note compares against."""
        if self._reference is None:
            self._reference = build_trial_config(self.ctx, {}, None).model_dump(mode="json")
        return self._reference

    def data_for(self, cfg: RunConfig) -> PreparedData:
        """Decoded arrays are shared by all trials that use the same data settings."""
        key = cfg.data.prepared_key()
        if key not in self._data:
            split = self.ctx.split.reusable_for(cfg.data) if self.ctx.split is not None else None
            self._data[key] = prepare_data(cfg.data, self.ctx.data_dir, progress=False, known_split=split)
        return self._data[key]

    def _progress_hook(self, number: int) -> Callable[[dict[str, float]], None] | None:
        """Batch progress for the live table (about once a second), when anyone listens."""
        if self.ctx.on_event is None:
            return None
        return lambda p: self._emit(kind="step", trial=number, **p)

    def _emit(self, **event: Any) -> None:
        if self.ctx.on_event is not None:
            self.ctx.on_event({**event, "worker": self.ctx.worker})

    def __call__(self, trial: optuna.Trial) -> float:
        run = self._start(trial)
        try:
            outcome = train_from_config(
                run.cfg,
                out_dir=run.out_dir,
                callbacks=[run.callback],
                progress=False,
                data=self.data_for(run.cfg),
                description=f"trial {trial.number}",
                on_progress=self._progress_hook(trial.number),
            )
        except optuna.TrialPruned as exc:
            self._stopped(run, key=keys.PRUNE_REASON, reason=str(exc), state="PRUNED")
            raise
        except NonFiniteLossError as exc:
            self._stopped(run, key=keys.PRUNE_REASON, reason=f"non-finite loss: {exc}", state="PRUNED")
            raise optuna.TrialPruned(str(exc)) from None
        except OutputError as exc:
            raise self._lost(run, exc) from None
        except Exception as exc:  # any other failure: FAIL with a reason, the study goes on
            raise self._failed(run, exc) from None
        except KeyboardInterrupt:
            # Optuna marks the trial FAIL right after; give it its note and curves while it still runs.
            with contextlib.suppress(Exception):
                self._stopped(run, key=keys.FAIL_REASON, reason=INTERRUPTED, state="FAIL")
            raise
        try:
            return self._record(run, outcome)
        except OutputError as exc:  # e.g. the artifact store's disk is full
            raise self._lost(run, exc) from None

    def _lost(self, run: _Running, exc: OutputError) -> OutputError:
        """A disk or folder fault: record what the trial reached, drop its folder (the ticket goes back and
        is re-run, and a full disk needs the space), and say what was lost. The worker stops on it."""
        self._stopped(run, key=keys.FAIL_REASON, reason=f"output fault: {exc}"[:500], state="FAIL")
        shutil.rmtree(run.out_dir, ignore_errors=True)
        best = run.callback.best
        reached = (
            f"it had reached {self.ctx.spec.metric} {best:.4f} in {len(run.callback.history)} epoch(s), "
            "which is lost; "
            if best is not None
            else ""
        )
        return OutputError(
            f"{exc}; trial {run.trial.number} stopped: {reached}its ticket goes back to the queue and this "
            "worker stops"
        )

    def _start(self, trial: optuna.Trial) -> _Running:
        """Sample the parameters, resolve the config, and store what the trial is about to train."""
        ctx, spec = self.ctx, self.ctx.spec
        started = time.perf_counter()
        params = suggest(trial, spec.space)
        cfg = build_trial_config(ctx, params, trial.number)
        trial.set_user_attr(keys.WORKER, ctx.worker)
        trial.set_user_attr(keys.CONFIG, cfg.model_dump(mode="json"))
        trial.set_user_attr(keys.SEED, cfg.train.seed)
        # Where it runs, from the start: a trial stopped before its end still names its hardware.
        trial.set_user_attr(keys.DEVICE, describe_device(resolve_device(cfg.train.device)))
        trial.set_user_attr(keys.HARDWARE, hardware())
        self._emit(
            kind="start", trial=trial.number, params=params, epochs=cfg.train.epochs, metric=spec.metric
        )

        def on_epoch(epoch: int, m: dict[str, float]) -> None:
            elapsed = time.perf_counter() - started
            self._emit(
                kind="epoch",
                trial=trial.number,
                epoch=epoch,
                epochs=cfg.train.epochs,
                value=cb.best,
                current=m.get(spec.metric),
                train_loss=m.get("train_loss"),
                img_per_s=m.get("train_img_per_s"),
                elapsed=elapsed,
                # The epochs so far, at their mean pace (the data preparation is in the first one).
                left_s=elapsed / epoch * (cfg.train.epochs - epoch) if epoch else None,
            )
            if ctx.deadline is not None and epoch < cfg.train.epochs and time.monotonic() >= ctx.deadline:
                # The study's wall-time budget is spent: stop here, so the study ends near the time asked
                # for instead of one whole (possibly long) trial later. Its epochs so far are recorded, and
                # it is marked so: with no finished trial, the export takes the furthest of these.
                trial.set_user_attr(keys.STOPPED_BY, "budget")
                raise optuna.TrialPruned(f"stopped after epoch {epoch}: the study's time budget ran out")

        cb = PruningCallback(
            trial, spec.metric, direction=spec.direction, on_epoch=on_epoch, epochs=cfg.train.epochs
        )
        return _Running(trial, cfg, cb, ctx.out_root / f"trial_{trial.number:04d}", started)

    def _stopped(self, run: _Running, *, key: str, reason: str, state: str) -> None:
        spec = self.ctx.spec
        best = record_partial(
            run.trial,
            run.callback.history,
            metric=spec.metric,
            direction=spec.direction,
            started=run.started,
            key=key,
            reason=reason,
        )
        self._stopped_curves(run, state)
        _drop_empty(run.out_dir)
        self._note(
            run,
            state=state,
            reason=reason,
            best_value=best[spec.metric] if best else None,
            best_epoch=int(best["epoch"]) if best else None,
            epochs_run=len(run.callback.history),
        )
        self._emit(kind="end", trial=run.trial.number, state=state, reason=reason)

    def _stopped_curves(self, run: _Running, state: str) -> None:
        """A pruned or failed trial's curves so far, as the dashboard shows a finished one's (uploaded while
        the trial still runs: a finished trial takes no artifact). A convenience: it never fails the trial."""
        if not run.callback.history or self.ctx.artifact_store is None:
            return
        from optuna.artifacts import upload_artifact

        try:
            path = plot_curves(
                run.callback.history, run.out_dir / "curves.png", title=f"trial {run.trial.number} ({state})",
                monitor=self.ctx.spec.metric,
            )
            ids = {"curves": upload_artifact(
                artifact_store=self.ctx.artifact_store, file_path=str(path), study_or_trial=run.trial,
                mimetype="image/png",
            )}  # fmt: skip
            run.trial.set_user_attr(keys.ARTIFACTS, ids)
        except Exception as exc:  # noqa: BLE001 - the record of the trial is what counts
            run.trial.set_user_attr(keys.NOTE_ERROR, f"curves: {type(exc).__name__}: {exc}"[:500])

    def _note(self, run: _Running, **outcome: Any) -> None:
        """The trial's note in optuna-dashboard (a failure to write it never fails the trial)."""
        from optuna_dashboard import save_note

        note = trial_note(
            metric=self.ctx.spec.metric,
            searched=dict(run.trial.params),
            differences=config_differences(run.cfg.model_dump(mode="json"), self.reference()),
            epochs=run.cfg.train.epochs,
            wall_s=time.perf_counter() - run.started,
            **outcome,
        )
        try:
            save_note(run.trial, note)
        except Exception as exc:  # noqa: BLE001 - the note is a convenience; the trial's record is what counts
            run.trial.set_user_attr(keys.NOTE_ERROR, f"{type(exc).__name__}: {exc}"[:500])

    def _failed(self, run: _Running, exc: Exception) -> Exception:
        """Record a failed trial and free the accelerator; returns the one-line error Optuna stores."""
        oom = is_oom(exc)
        reason = "oom" if oom else f"{type(exc).__name__}: {exc}"
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        # Drop the traceback (it pins the model and optimizer tensors) before freeing memory.
        exc.__traceback__ = None
        del exc
        release_memory(resolve_device(run.cfg.train.device))
        self._stopped(run, key=keys.FAIL_REASON, reason=reason, state="FAIL")
        run.trial.set_user_attr(keys.FAIL_DETAIL, detail[:2000])
        if oom:
            return TrialOOM(f"trial {run.trial.number} ran out of accelerator memory")
        return RuntimeError(f"trial {run.trial.number} failed: {reason}")

    def _record(self, run: _Running, outcome: TrainOutcome) -> float:
        """Store the finished fit with the trial; the value is the best epoch's study metric."""
        trial, res = run.trial, outcome.result
        t_record = time.perf_counter()
        attrs = {**res.summary(), keys.MANIFEST: outcome.manifest, keys.OUT_DIR: str(run.out_dir)}
        for k, v in attrs.items():
            trial.set_user_attr(k, v)
        if self.ctx.artifact_store is not None:
            trial.set_user_attr(keys.ARTIFACTS, self._upload(trial, outcome))
        total = time.perf_counter() - run.started
        # Study overhead = everything outside fit(): storage writes, gallery, curves, artifacts.
        trial.set_user_attr(keys.TRIAL_WALL_S, total)
        trial.set_user_attr(keys.OVERHEAD_S, total - res.wall_time_s)
        trial.set_user_attr(keys.RECORD_S, time.perf_counter() - t_record)
        value = float(res.best_value)  # fit kept the epoch with the best study metric (train.monitor)
        self._note(
            run,
            state="COMPLETE",
            best_value=value,
            best_epoch=res.best_epoch,
            epochs_run=res.epochs_run,
        )
        self._emit(kind="end", trial=trial.number, state="COMPLETE", value=value)
        return value

    def _upload(self, trial: optuna.Trial, outcome: TrainOutcome) -> dict[str, str]:
        from optuna.artifacts import upload_artifact

        ids = {}
        for name, path in (("gallery", outcome.gallery_path), ("curves", outcome.curves_path)):
            if path is not None and Path(path).exists():
                ids[name] = upload_artifact(
                    artifact_store=self.ctx.artifact_store,
                    file_path=str(path),
                    study_or_trial=trial,
                    mimetype="image/png",
                )
        return ids
