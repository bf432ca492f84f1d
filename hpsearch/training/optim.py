"""Optimizer and learning-rate schedule registries."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

from hpsearch.registry import Registry
from hpsearch.training.config import TrainConfig

OptimizerFactory = Callable[[Iterable[torch.nn.Parameter], TrainConfig], torch.optim.Optimizer]
OPTIMIZERS: Registry[OptimizerFactory] = Registry("optimizer")


@OPTIMIZERS.register("adam")
def _adam(params: Iterable[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


@OPTIMIZERS.register("adamw")
def _adamw(params: Iterable[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


@OPTIMIZERS.register("sgd")
def _sgd(params: Iterable[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        params,
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov and cfg.momentum > 0,
        weight_decay=cfg.weight_decay,
    )


@OPTIMIZERS.register("rmsprop")
def _rmsprop(params: Iterable[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


@OPTIMIZERS.register("adagrad")
def _adagrad(params: Iterable[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.Adagrad(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def create_optimizer(params: Iterable[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    """Build the optimizer named by ``cfg.optimizer``."""
    return OPTIMIZERS.get(cfg.optimizer)(params, cfg)


class Schedule:
    """A learning-rate schedule with two hooks: after each optimizer step and after each validation."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer

    def step_batch(self) -> None:
        """Called after every optimizer step."""

    def step_epoch(self, value: float) -> None:
        """Called after every validation with the epoch's monitored metric (higher is better)."""

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to continue the schedule where it stopped (the optimizer's own state,
        learning rates included, is saved beside it)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state_dict()``; called after the optimizer's state is loaded."""


class _Constant(Schedule):
    pass


class _WarmupCosine(Schedule):
    """Linear warm-up over ``warmup_epochs`` then cosine decay to 0, stepped per batch (smooth)."""

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int) -> None:
        super().__init__(optimizer)
        self.total = max(1, total_steps)
        self.warmup = warmup_steps
        self.base = [g["lr"] for g in optimizer.param_groups]
        self.t = 0
        self._apply()

    def _factor(self) -> float:
        if self.t < self.warmup:
            return (self.t + 1) / (self.warmup + 1)
        progress = (self.t - self.warmup) / max(1, self.total - self.warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    def _apply(self) -> None:
        f = self._factor()
        for g, b in zip(self.optimizer.param_groups, self.base, strict=True):
            g["lr"] = b * f

    def step_batch(self) -> None:
        self.t += 1
        self._apply()

    def state_dict(self) -> dict[str, Any]:
        return {"t": self.t}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.t = int(state["t"])
        self._apply()  # ``base`` is the configured lr, as before the interruption


class _Plateau(Schedule):
    """Reduce LR when the monitored validation metric (val Dice by default) stops improving."""

    def __init__(self, optimizer: torch.optim.Optimizer, patience: int, factor: float) -> None:
        super().__init__(optimizer)
        self.inner = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", patience=patience, factor=factor
        )

    def step_epoch(self, value: float) -> None:
        self.inner.step(value)

    def state_dict(self) -> dict[str, Any]:
        return dict(self.inner.state_dict())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state)


ScheduleFactory = Callable[[torch.optim.Optimizer, TrainConfig, int], Schedule]
SCHEDULERS: Registry[ScheduleFactory] = Registry("lr schedule")
SCHEDULERS.add("none", lambda opt, cfg, steps: _Constant(opt))
SCHEDULERS.add(
    "cosine",
    lambda opt, cfg, steps: _WarmupCosine(opt, cfg.epochs * steps, cfg.warmup_epochs * steps),
)
SCHEDULERS.add("plateau", lambda opt, cfg, steps: _Plateau(opt, cfg.plateau_patience, cfg.plateau_factor))


def create_schedule(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int) -> Schedule:
    """Build the schedule named by ``cfg.scheduler``."""
    return SCHEDULERS.get(cfg.scheduler)(optimizer, cfg, steps_per_epoch)
