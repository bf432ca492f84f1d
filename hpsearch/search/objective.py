"""The Optuna objective: sample a config, run ``fit`` with a pruning callback, record everything.

Together with ``search_space.py`` this is the only code that touches ``optuna.Trial``.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch

from hpsearch.errors import NonFiniteLossError
from hpsearch.search.space import suggest
from hpsearch.search.spec import StudySpec
from hpsearch.training.config import RunConfig, resolve_run_config
from hpsearch.training.device import release_memory, resolve_device
from hpsearch.training.runner import PreparedData, prepare_data, train_from_config

Event = dict[str, Any]


class TrialOOM(RuntimeError):
    """A trial ran out of accelerator memory; the study continues with ``fail_reason=oom``."""


def is_oom(exc: BaseException) -> bool:
    """CUDA raises ``torch.OutOfMemoryError``; MPS raises a RuntimeError that says so."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


class PruningCallback:
    """Reports the metric to Optuna every epoch and raises ``TrialPruned`` when the pruner says so."""

    def __init__(
        self,
        trial: optuna.Trial,
        metric: str,
        on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    ) -> None:
        self.trial = trial
        self.metric = metric
        self.history: list[dict[str, float]] = []
        self.on_epoch = on_epoch

    def __call__(self, epoch: int, metrics: dict[str, float]) -> None:
        self.history.append(metrics)
        value = float(metrics[self.metric])
        self.trial.report(value, epoch)
        if self.on_epoch is not None:
            self.on_epoch(epoch, metrics)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch} with {self.metric}={value:.4f}")


@dataclass
class TrialContext:
    """What every trial of one worker shares."""

    spec: StudySpec
    data_dir: Path
    out_root: Path
    overrides: dict[str, Any] = field(default_factory=dict)
    max_epochs: int | None = None
    artifact_store: Any | None = None
    worker: str = "0"
    on_event: Callable[[Event], None] | None = None


def build_trial_config(ctx: TrialContext, params: dict[str, Any], trial_number: int) -> RunConfig:
    """Defaults < study ``fixed`` < sampled params < CLI overrides; seed = study seed + trial number."""
    return resolve_run_config(
        ctx.spec.fixed,
        params=params,
        overrides=ctx.overrides,
        data_path=ctx.data_dir,
        seed=ctx.spec.seed + trial_number,
        max_epochs=ctx.max_epochs,
        source=f"study '{ctx.spec.name}'",
    )


class Objective:
    """Callable objective for ``study.optimize``; prepares each distinct dataset/split once per worker."""

    def __init__(self, ctx: TrialContext) -> None:
        self.ctx = ctx
        self._data: dict[str, PreparedData] = {}

    def data_for(self, cfg: RunConfig) -> PreparedData:
        """Decoded arrays are shared by all trials that use the same data settings."""
        key = cfg.data.prepared_key()
        if key not in self._data:
            self._data[key] = prepare_data(cfg.data, self.ctx.data_dir, progress=False)
        return self._data[key]

    def _emit(self, **event: Any) -> None:
        if self.ctx.on_event is not None:
            self.ctx.on_event(event)

    def __call__(self, trial: optuna.Trial) -> float:
        ctx = self.ctx
        t0 = time.perf_counter()
        params = suggest(trial, ctx.spec.space)
        cfg = build_trial_config(ctx, params, trial.number)
        trial.set_user_attr("worker", ctx.worker)
        trial.set_user_attr("config", cfg.model_dump(mode="json"))
        trial.set_user_attr("seed", cfg.train.seed)
        self._emit(
            kind="start", trial=trial.number, params=params, epochs=cfg.train.epochs, worker=ctx.worker
        )

        def on_epoch(epoch: int, m: dict[str, float]) -> None:
            self._emit(
                kind="epoch",
                trial=trial.number,
                epoch=epoch,
                epochs=cfg.train.epochs,
                dice=m["val_dice"],
                worker=ctx.worker,
            )

        cb = PruningCallback(trial, ctx.spec.metric, on_epoch)
        out_dir = ctx.out_root / f"trial_{trial.number:04d}"
        try:
            outcome = train_from_config(
                cfg,
                out_dir=out_dir,
                callbacks=[cb],
                progress=False,
                data=self.data_for(cfg),
                description=f"trial {trial.number}",
            )
        except optuna.TrialPruned as exc:
            self._record_partial(trial, cb, t0, reason=str(exc), key="prune_reason")
            self._drop_empty(out_dir)
            self._emit(kind="end", trial=trial.number, state="PRUNED", worker=ctx.worker)
            raise
        except NonFiniteLossError as exc:
            self._record_partial(trial, cb, t0, reason=f"non-finite loss: {exc}", key="prune_reason")
            self._drop_empty(out_dir)
            self._emit(kind="end", trial=trial.number, state="PRUNED", worker=ctx.worker)
            raise optuna.TrialPruned(str(exc)) from None
        except Exception as exc:  # any other failure: FAIL with a reason, the study goes on
            oom = is_oom(exc)
            reason = "oom" if oom else f"{type(exc).__name__}: {exc}"
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            # Drop the traceback (it pins the model and optimizer tensors) before freeing memory.
            exc.__traceback__ = None
            del exc
            release_memory(resolve_device(cfg.train.device))
            self._record_partial(trial, cb, t0, reason=reason, key="fail_reason")
            self._drop_empty(out_dir)
            trial.set_user_attr("fail_detail", detail[:2000])
            self._emit(kind="end", trial=trial.number, state="FAIL", worker=ctx.worker, reason=reason)
            if oom:
                raise TrialOOM(f"trial {trial.number} ran out of accelerator memory") from None
            raise RuntimeError(f"trial {trial.number} failed: {reason}") from None

        res = outcome.result
        t_record = time.perf_counter()
        attrs = {
            "best_val_dice": res.best_dice,
            "best_val_iou": res.best_iou,
            "best_epoch": res.best_epoch,
            "epochs_run": res.epochs_run,
            "history": res.history,
            "wall_time_s": res.wall_time_s,
            "train_img_per_s": res.train_img_per_s,
            "device": res.device,
            "peak_memory_mb": res.peak_memory_mb,
            "manifest": outcome.manifest,
            "checkpoint": str(res.checkpoint_path) if res.checkpoint_path else None,
            "out_dir": str(out_dir),
        }
        for k, v in attrs.items():
            trial.set_user_attr(k, v)
        if ctx.artifact_store is not None:
            from optuna.artifacts import upload_artifact

            ids = {}
            for name, path in (("gallery", outcome.gallery_path), ("curves", outcome.curves_path)):
                if path is not None and Path(path).exists():
                    ids[name] = upload_artifact(
                        artifact_store=ctx.artifact_store,
                        file_path=str(path),
                        study_or_trial=trial,
                        mimetype="image/png",
                    )
            trial.set_user_attr("artifacts", ids)
        total = time.perf_counter() - t0
        # Study overhead = everything outside fit(): storage writes, gallery, curves, artifacts.
        trial.set_user_attr("trial_wall_s", total)
        trial.set_user_attr("overhead_s", total - res.wall_time_s)
        trial.set_user_attr("record_s", time.perf_counter() - t_record)
        self._emit(kind="end", trial=trial.number, state="COMPLETE", value=res.best_dice, worker=ctx.worker)
        value = res.best_dice if ctx.spec.metric == "val_dice" else res.best_iou
        return float(value)

    @staticmethod
    def _drop_empty(out_dir: Path) -> None:
        # A pruned or failed trial writes no checkpoint; don't leave an empty folder behind.
        if out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()

    def _record_partial(
        self, trial: optuna.Trial, cb: PruningCallback, t0: float, *, reason: str, key: str
    ) -> None:
        trial.set_user_attr(key, reason)
        trial.set_user_attr("history", json.loads(json.dumps(cb.history)))
        trial.set_user_attr("trial_wall_s", time.perf_counter() - t0)
        trial.set_user_attr("epochs_run", len(cb.history))
        if cb.history:
            best = max(cb.history, key=lambda h: h["val_dice"])
            trial.set_user_attr("best_val_dice", best["val_dice"])
            trial.set_user_attr("best_epoch", int(best["epoch"]))
