"""``fit``: the one training loop of the project.

Each epoch trains, validates, then calls every callback with ``(epoch, metrics)``. Pruning plugs in as a
callback that raises; this module never imports optuna.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from hpsearch.data.device_augment import normalize_batch
from hpsearch.errors import NonFiniteLossError, OutputError
from hpsearch.training import record_keys as rk
from hpsearch.training.checkpoint import ResumePoint, load_resume_state, save_checkpoint, save_resume_state
from hpsearch.training.config import TrainConfig
from hpsearch.training.device import (
    autocast,
    cudnn_benchmark,
    describe_device,
    peak_memory_mb,
    reset_peak_memory,
    resolve_device,
)
from hpsearch.training.losses import create_loss
from hpsearch.training.metric_table import DEFAULT_METRIC, METRICS
from hpsearch.training.metrics import SegMetrics
from hpsearch.training.optim import Schedule, create_optimizer, create_schedule
from hpsearch.training.progress import EpochBar, epoch_progress, say

Callback = Callable[[int, dict[str, float]], None]
Batch = tuple[torch.Tensor, torch.Tensor]

__all__ = [
    "BestEpoch",
    "Callback",
    "FitResult",
    "ResumableLoader",
    "best_epoch_row",
    "evaluate_loader",
    "fit",
    "improves",
]

# How often (in optimizer steps) the loop reads the non-finite flag back from the device. Reading it every
# step would force a host sync per step and stall the GPU queue; a NaN is still caught within this many steps.
_NONFINITE_CHECK_EVERY = 16


@dataclass
class FitResult:
    """What one call of ``fit`` produced.

    ``best_epoch`` is the epoch with the best ``monitor`` value (``best_value``); ``best_dice`` and
    ``best_iou`` are the validation Dice and IoU *at that epoch*, whichever metric picked it.
    """

    best_dice: float
    best_iou: float
    best_epoch: int
    history: list[dict[str, float]]
    epochs_run: int
    wall_time_s: float
    train_img_per_s: float
    device: str
    peak_memory_mb: float | None
    checkpoint_path: Path | None = None
    best_state: dict[str, torch.Tensor] | None = field(default=None, repr=False)
    monitor: str = DEFAULT_METRIC
    best_value: float = float("nan")
    resumed_from_epoch: int = 0

    @property
    def best_metrics(self) -> dict[str, float]:
        """The history row of the best epoch."""
        return self.history[self.best_epoch - 1] if self.best_epoch else {}

    def summary(self, base: Path | None = None) -> dict[str, Any]:
        """The one JSON-safe record of a finished fit: what a trial, metrics.json and reproduce store.

        With ``base`` (the folder a file record is written to) the checkpoint is named relative to it.
        """
        checkpoint = self.checkpoint_path
        if checkpoint is not None and base is not None:
            from hpsearch.data.io import portable_path

            checkpoint = portable_path(checkpoint, base)
        return {
            rk.MONITOR: self.monitor,
            rk.BEST_VALUE: self.best_value if math.isfinite(self.best_value) else None,
            rk.BEST_EPOCH: self.best_epoch,
            rk.BEST_VAL_DICE: self.best_dice,
            rk.BEST_VAL_IOU: self.best_iou,
            rk.EPOCHS_RUN: self.epochs_run,
            rk.WALL_TIME_S: self.wall_time_s,
            rk.TRAIN_IMG_PER_S: self.train_img_per_s,
            rk.DEVICE: self.device,
            rk.PEAK_MEMORY_MB: self.peak_memory_mb,
            rk.HISTORY: [dict(row) for row in self.history],
            rk.CHECKPOINT: str(checkpoint) if checkpoint else None,
            rk.RESUMED_FROM_EPOCH: self.resumed_from_epoch,
        }


def improves(value: float, best: float | None, direction: str) -> bool:
    """The one best-epoch rule: does ``value`` beat ``best`` in ``direction`` (a metric's is in ``METRICS``)?

    A tie keeps the earlier epoch, NaN never wins, and any number beats nothing yet (``best`` None or NaN).
    ``BestEpoch`` (the epoch ``fit`` keeps), ``best_epoch_row`` (a history's) and the pruning callback's
    running best all decide with it, so a trial's record, its curves and what the pruner saw agree.
    """
    if math.isnan(value):
        return False
    if best is None or math.isnan(best):
        return True
    return value > best if direction == "maximize" else value < best


def best_epoch_row(
    history: Iterable[dict[str, float]], monitor: str = DEFAULT_METRIC, direction: str | None = None
) -> dict[str, float] | None:
    """The history row of the epoch ``fit`` keeps by ``monitor`` (``direction`` None: the metric's own);
    None when no epoch has a value."""
    direction = direction or METRICS[monitor].direction
    best: dict[str, float] | None = None
    for row in history:
        if improves(float(row[monitor]), None if best is None else float(best[monitor]), direction):
            best = row
    return best


@dataclass
class BestEpoch:
    """The kept epoch by ``monitor`` (``improves``: the metric's direction; ties keep the earlier epoch; NaN
    never wins); ``epoch`` 0 until one is kept."""

    monitor: str = DEFAULT_METRIC
    value: float = -1.0
    epoch: int = 0
    dice: float = -1.0
    iou: float = 0.0

    def offer(self, row: dict[str, float]) -> bool:
        """Consider one epoch's history row; True when it becomes the best (its weights should be kept)."""
        value = float(row[self.monitor])
        if not improves(value, self.value if self.epoch else None, METRICS[self.monitor].direction):
            return False
        self.value, self.epoch = float(value), int(row["epoch"])
        self.dice, self.iou = float(row["val_dice"]), float(row["val_iou"])
        return True


def _should_compile(cfg: TrainConfig, device: torch.device, steps_per_epoch: int) -> bool:
    """torch.compile costs tens of seconds up front; only worth it on CUDA for long enough runs."""
    if cfg.compile == "on":
        return True
    if cfg.compile == "off" or device.type != "cuda":
        return False
    return cfg.epochs * steps_per_epoch >= 1500


def _to_device(batch: Batch, device: torch.device, channels_last: bool) -> Batch:
    x, y = batch
    x = x.to(device, non_blocking=True)
    y = y.to(device, non_blocking=True)
    if x.dtype == torch.uint8:  # (N, H, W, 3) from a loader that leaves normalisation to the device
        x = normalize_batch(x)
        if not channels_last:
            x = x.contiguous()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y


def _len_or_none(obj: Iterable[Any]) -> int | None:
    try:
        return len(obj)  # type: ignore[arg-type]
    except TypeError:
        return None


@torch.no_grad()
def evaluate_loader(
    model: nn.Module,
    loader: Iterable[Batch],
    *,
    device: torch.device,
    loss_fn: nn.Module | None = None,
    amp: bool = True,
    mps_amp: bool = False,
    channels_last: bool = False,
) -> tuple[dict[str, float], SegMetrics]:
    """Batched validation: metrics accumulate on the device and sync once at the end."""
    model.eval()
    metrics = SegMetrics()
    loss_sum = torch.zeros((), device=device)
    n = 0
    for batch in loader:
        x, y = _to_device(batch, device, channels_last)
        with autocast(device, amp=amp, mps_amp=mps_amp):
            logits = model(x)
        logits = logits.float()
        if loss_fn is not None:
            loss_sum += loss_fn(logits, y) * x.shape[0]
        n += x.shape[0]
        metrics.update(logits, y)
    out = metrics.compute()
    if loss_fn is not None and n:
        out["loss"] = float(loss_sum.item()) / n
    return out, metrics


@dataclass
class _Loop:
    """What every epoch of one ``fit`` call shares: model (and its compiled twin), optimisation, device."""

    cfg: TrainConfig
    model: nn.Module
    step_model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    loss_fn: nn.Module
    device: torch.device
    channels_last: bool
    steps_per_epoch: int


def _setup(model: nn.Module, train_loader: Iterable[Batch], cfg: TrainConfig) -> _Loop:
    """Place the model, and build optimizer, schedule, loss and (when it pays off) the compiled model."""
    device = resolve_device(cfg.device)
    channels_last = cfg.channels_last and device.type == "cuda"
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    steps = _len_or_none(train_loader) or 1
    if cfg.max_steps_per_epoch:
        steps = min(steps, cfg.max_steps_per_epoch)
    optimizer = create_optimizer(model.parameters(), cfg)
    step_model: nn.Module = torch.compile(model) if _should_compile(cfg, device, steps) else model
    return _Loop(
        cfg=cfg,
        model=model,
        step_model=step_model,
        optimizer=optimizer,
        schedule=create_schedule(optimizer, cfg, steps),
        loss_fn=create_loss(cfg.loss, **cfg.loss_kwargs),
        device=device,
        channels_last=channels_last,
        steps_per_epoch=steps,
    )


def _train_epoch(loop: _Loop, loader: Iterable[Batch], epoch: int, bar: EpochBar) -> tuple[float, int, float]:
    """One pass over the training batches; returns (mean train loss, images seen, seconds)."""
    cfg, device = loop.cfg, loop.device
    loop.step_model.train()
    t0 = time.perf_counter()
    loss_sum = torch.zeros((), device=device)
    bad = torch.zeros((), dtype=torch.bool, device=device)
    n_img = 0
    for step, batch in enumerate(loader):
        if cfg.max_steps_per_epoch and step >= cfg.max_steps_per_epoch:
            break
        x, y = _to_device(batch, device, loop.channels_last)
        with autocast(device, amp=cfg.amp, mps_amp=cfg.mps_amp):
            logits = loop.step_model(x)
        loss = loop.loss_fn(logits.float(), y)
        bad |= ~torch.isfinite(loss.detach())
        if (step + 1) % _NONFINITE_CHECK_EVERY == 0 and bool(bad):
            raise NonFiniteLossError(
                f"non-finite training loss at epoch {epoch}, step <= {step + 1} (lr={cfg.lr:g})",
                epoch=epoch,
                step=step + 1,
            )
        loop.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            nn.utils.clip_grad_norm_(loop.model.parameters(), cfg.grad_clip)
        loop.optimizer.step()
        loop.schedule.step_batch()
        loss_sum += loss.detach() * x.shape[0]
        n_img += x.shape[0]
        bar.advance_step(images=int(x.shape[0]))
    train_loss = float(loss_sum.item()) / max(1, n_img)
    if bool(bad) or not math.isfinite(train_loss):
        raise NonFiniteLossError(
            f"non-finite training loss in epoch {epoch} (lr={cfg.lr:g})", epoch=epoch, step=-1
        )
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return train_loss, n_img, time.perf_counter() - t0


def _validate_epoch(
    loop: _Loop, loader: Iterable[Batch], epoch: int, *, train_loss: float, n_img: int, t_train: float
) -> dict[str, float]:
    """Validate, step the epoch-level schedule on the monitored metric, and return the epoch's history row."""
    t1 = time.perf_counter()
    val, _ = evaluate_loader(
        loop.step_model,
        loader,
        device=loop.device,
        loss_fn=loop.loss_fn,
        amp=loop.cfg.amp,
        mps_amp=loop.cfg.mps_amp,
        channels_last=loop.channels_last,
    )
    t_val = time.perf_counter() - t1
    row = {
        "epoch": float(epoch),
        "train_loss": train_loss,
        "val_loss": val.get("loss", float("nan")),
        "val_dice": val["dice"],
        "val_iou": val["iou"],
        "val_micro_dice": val["micro_dice"],
        "lr": float(loop.optimizer.param_groups[0]["lr"]),
        "train_time_s": t_train,
        "val_time_s": t_val,
        "train_img_per_s": n_img / t_train if t_train > 0 else 0.0,
    }
    loop.schedule.step_epoch(row[loop.cfg.monitor])
    return row


def _host_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    # The best weights stay in host memory; the file is written once at the end, which keeps per-epoch
    # I/O out of the trial's wall time.
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


@dataclass
class _Run:
    """What one run has done so far: everything a resumed run continues from besides the loop's state."""

    best: BestEpoch
    history: list[dict[str, float]] = field(default_factory=list)
    best_state: dict[str, torch.Tensor] | None = None
    images_seen: int = 0
    train_time: float = 0.0
    elapsed_before: float = 0.0  # wall seconds of earlier sittings of a resumed run
    resumed_from: int = 0


@runtime_checkable
class ResumableLoader(Protocol):
    """A training loader whose random streams (shuffle order, augmentation draws) a resumed run continues:
    ``load_state_dict`` restores what ``state_dict`` returned. ``fit`` saves it between epochs; a loader
    without these methods starts its streams afresh on a resume."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def _resume_state(loop: _Loop, run: _Run, train_loader: Iterable[Batch], elapsed: float) -> dict[str, Any]:
    return {
        "epoch": len(run.history),
        "model": _host_copy(loop.model),
        "optimizer": loop.optimizer.state_dict(),
        "schedule": loop.schedule.state_dict(),
        "best": dataclasses.asdict(run.best),
        "best_state": run.best_state,
        "history": run.history,
        "images_seen": run.images_seen,
        "train_time": run.train_time,
        "elapsed": elapsed,
        "torch_rng": torch.get_rng_state(),
        "loader_rng": train_loader.state_dict() if isinstance(train_loader, ResumableLoader) else None,
    }


def _start_run(loop: _Loop, train_loader: Iterable[Batch], resume: ResumePoint | None, verbose: bool) -> _Run:
    """A fresh run, or the state ``resume`` saved after an earlier sitting's last saved epoch."""
    run = _Run(best=BestEpoch(monitor=loop.cfg.monitor))
    state, why_not = load_resume_state(resume) if resume is not None else (None, None)
    if why_not and verbose:
        say(why_not)
    if state is None:
        return run
    loop.model.load_state_dict(state["model"])
    loop.optimizer.load_state_dict(state["optimizer"])
    loop.schedule.load_state_dict(state["schedule"])
    torch.set_rng_state(state["torch_rng"])
    if state.get("loader_rng") is not None and isinstance(train_loader, ResumableLoader):
        train_loader.load_state_dict(state["loader_rng"])
    run = _Run(
        best=BestEpoch(**state["best"]),
        history=list(state["history"]),
        best_state=state["best_state"],
        images_seen=int(state["images_seen"]),
        train_time=float(state["train_time"]),
        elapsed_before=float(state["elapsed"]),
        resumed_from=int(state["epoch"]),
    )
    if verbose:
        say(f"resuming after epoch {run.resumed_from}/{loop.cfg.epochs} (state in {resume.path})")
    return run


def fit(
    model: nn.Module,
    train_loader: Iterable[Batch],
    val_loader: Iterable[Batch],
    *,
    config: TrainConfig,
    callbacks: Sequence[Callback] = (),
    checkpoint_path: str | Path | None = None,
    checkpoint_extra: dict[str, Any] | None = None,
    progress: bool | None = None,
    description: str = "train",
    on_progress: Callable[[dict[str, float]], None] | None = None,
    resume: ResumePoint | None = None,
) -> FitResult:
    """Train ``model`` and keep the epoch with the best validation ``config.monitor`` (Dice by default).

    ``train_loader`` / ``val_loader`` are re-iterable sources of ``(image, mask)`` batches, either on the
    CPU (moved here) or already on the device. A callback may raise to stop training (pruning); the
    exception propagates. A non-finite loss raises ``NonFiniteLossError``. When ``checkpoint_path`` is
    given, the best epoch is saved there as a self-describing dict (``checkpoint_extra`` adds the model
    name, kwargs and resolved config so the file rebuilds the model on its own). ``on_progress`` hears
    about once a second how the epoch is going (batch, steps, images/s, seconds left in the run).
    With ``resume``, the run's state is saved between epochs and a later call with the same point continues
    after the last saved epoch (same weights, optimizer, schedule, best epoch and history); the file is
    removed when the run finishes.
    """
    cfg = config
    loop = _setup(model, train_loader, cfg)
    run = _start_run(loop, train_loader, resume, verbose=progress is not False)
    reset_peak_memory(loop.device)
    t_start = last_save = time.perf_counter()
    bar_ctx = epoch_progress(
        cfg.epochs,
        loop.steps_per_epoch,
        description,
        progress,
        listener=on_progress,
        start_epoch=run.resumed_from,
    )
    with cudnn_benchmark(loop.device), bar_ctx as bar:
        for epoch in range(run.resumed_from + 1, cfg.epochs + 1):
            train_loss, n_img, t_train = _train_epoch(loop, train_loader, epoch, bar)
            run.images_seen, run.train_time = run.images_seen + n_img, run.train_time + t_train
            row = _validate_epoch(
                loop, val_loader, epoch, train_loss=train_loss, n_img=n_img, t_train=t_train
            )
            run.history.append(row)
            if run.best.offer(row):
                run.best_state = _host_copy(loop.model)
            bar.end_epoch(
                epoch,
                train_loss=train_loss,
                val_dice=row["val_dice"],
                best_dice=run.best.dice,
                img_per_s=row["train_img_per_s"],
            )
            now = time.perf_counter()
            if resume is not None and epoch < cfg.epochs and now - last_save >= resume.every_s:
                elapsed = run.elapsed_before + now - t_start
                save_resume_state(resume, _resume_state(loop, run, train_loader, elapsed))
                last_save = time.perf_counter()
            for cb in callbacks:
                cb(epoch, dict(row))
    return _finish(loop, run, cfg, t_start, checkpoint_path, checkpoint_extra, resume)


def _finish(
    loop: _Loop,
    run: _Run,
    cfg: TrainConfig,
    t_start: float,
    checkpoint_path: str | Path | None,
    checkpoint_extra: dict[str, Any] | None,
    resume: ResumePoint | None,
) -> FitResult:
    best = run.best
    result = FitResult(
        best_dice=best.dice,
        best_iou=best.iou,
        best_epoch=best.epoch,
        history=run.history,
        epochs_run=len(run.history),
        wall_time_s=run.elapsed_before + time.perf_counter() - t_start,
        train_img_per_s=run.images_seen / run.train_time if run.train_time > 0 else 0.0,
        device=describe_device(loop.device),
        peak_memory_mb=peak_memory_mb(loop.device),
        best_state=run.best_state,
        monitor=cfg.monitor,
        best_value=best.value if best.epoch else float("nan"),
        resumed_from_epoch=run.resumed_from,
    )
    if checkpoint_path is not None and run.best_state is not None:
        try:
            result.checkpoint_path = save_checkpoint(
                checkpoint_path,
                state_dict=run.best_state,
                epoch=result.best_epoch,
                metrics=result.best_metrics,
                extra=checkpoint_extra or {},
            )
        except OutputError as exc:
            # Say what the fault cost: the trained weights exist only in this process.
            raise OutputError(
                f"{exc}; the weights of the best epoch ({cfg.monitor} {best.value:.4f} at epoch "
                f"{best.epoch}) are lost"
            ) from None
    if resume is not None:
        Path(resume.path).unlink(missing_ok=True)  # finished: the state has nothing left to resume
    return result
