"""Segmentation losses on logits, and the ``LOSSES`` registry.

Every loss is an ``nn.Module`` called as ``loss(logits, target) -> scalar`` where ``logits`` are raw model
outputs (no sigmoid applied) and ``target`` has the same shape with values in [0, 1]. Inputs are cast to
float32 first, so a loss called under bf16/fp16 autocast is still computed (and reduced) in float32: the
sums over 65k pixels per image in Dice/Tversky lose several digits in bf16.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Real

import torch
import torch.nn.functional as F
from torch import nn

from hpsearch.errors import ConfigError
from hpsearch.registry import Registry

LOSSES: Registry[Callable[..., nn.Module]] = Registry("loss")


def _check_real(name: str, value: object, *, minimum: float, inclusive: bool = True) -> float:
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(float(value))
    if ok:
        ok = value >= minimum if inclusive else value > minimum
    if not ok:
        bound = ">=" if inclusive else ">"
        raise ConfigError(f"{name} must be a finite number {bound} {minimum}, got {value!r}")
    return float(value)


def _as_float32(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if logits.shape != target.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} differ in shape")
    return logits.float(), target.float()


def _soft_counts(
    logits: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-image soft (TP, sum of probabilities, sum of targets), each of shape (N,)."""
    probs = torch.sigmoid(logits).flatten(1)
    target = target.flatten(1)
    return (probs * target).sum(1), probs.sum(1), target.sum(1)


@LOSSES.register("bce")
class BCELoss(nn.Module):
    """Binary cross-entropy on logits, mean over all pixels; ``pos_weight`` scales the foreground term."""

    def __init__(self, pos_weight: float | None = None) -> None:
        super().__init__()
        if pos_weight is not None:
            pos_weight = _check_real("pos_weight", pos_weight, minimum=0.0, inclusive=False)
            self.register_buffer("pos_weight", torch.tensor(pos_weight), persistent=False)
        else:
            self.pos_weight = None

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar mean BCE."""
        logits, target = _as_float32(logits, target)
        pw = self.pos_weight
        if pw is not None and pw.device != logits.device:
            # Losses are rarely moved with .to(device); follow the inputs instead of failing.
            pw = pw.to(logits.device)
        return F.binary_cross_entropy_with_logits(logits, target, pos_weight=pw)


@LOSSES.register("dice")
class DiceLoss(nn.Module):
    """Soft Dice loss ``1 - (2 sum(p t) + smooth) / (sum p + sum t + smooth)`` with ``p = sigmoid(logits)``.

    Computed per image, then averaged over the batch, so small polyps weigh as much as large ones.
    ``smooth`` keeps an empty target with an empty prediction at loss 0 and the gradient finite.
    """

    def __init__(self, smooth: float = 1.0) -> None:
        super().__init__()
        self.smooth = _check_real("smooth", smooth, minimum=0.0)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar mean per-image Dice loss."""
        logits, target = _as_float32(logits, target)
        tp, p_sum, t_sum = _soft_counts(logits, target)
        dice = (2 * tp + self.smooth) / (p_sum + t_sum + self.smooth)
        return (1 - dice).mean()


@LOSSES.register("bce_dice")
class BCEDiceLoss(nn.Module):
    """``bce_weight * BCE + dice_weight * Dice`` (see ``BCELoss`` and ``DiceLoss``)."""

    def __init__(
        self,
        bce_weight: float = 1.0,
        dice_weight: float = 1.0,
        pos_weight: float | None = None,
        smooth: float = 1.0,
    ) -> None:
        super().__init__()
        self.bce_weight = _check_real("bce_weight", bce_weight, minimum=0.0)
        self.dice_weight = _check_real("dice_weight", dice_weight, minimum=0.0)
        if self.bce_weight == 0 and self.dice_weight == 0:
            raise ConfigError("bce_weight and dice_weight cannot both be 0")
        self.bce = BCELoss(pos_weight=pos_weight)
        self.dice = DiceLoss(smooth=smooth)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar weighted sum."""
        return self.bce_weight * self.bce(logits, target) + self.dice_weight * self.dice(logits, target)


@LOSSES.register("focal")
class FocalLoss(nn.Module):
    """Focal loss (ICCV 2017): ``alpha_t * (1 - p_t)**gamma * BCE``, mean over all pixels.

    ``alpha`` weights the foreground (``1 - alpha`` the background); ``alpha=None`` disables the weighting,
    and with ``gamma=0`` the loss is then exactly BCE. The cross-entropy comes from the fused stable
    logits formula, and ``1 - p_t`` is built from ``sigmoid(x)`` and ``sigmoid(-x)`` rather than
    ``1 - sigmoid(x)``, so it does not cancel to 0 for confident pixels.
    """

    def __init__(self, alpha: float | None = 0.25, gamma: float = 2.0) -> None:
        super().__init__()
        if alpha is not None:
            alpha = _check_real("alpha", alpha, minimum=0.0)
            if alpha > 1:
                raise ConfigError(f"alpha must be in [0, 1] or null, got {alpha!r}")
        self.alpha = alpha
        self.gamma = _check_real("gamma", gamma, minimum=0.0)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar mean focal loss."""
        logits, target = _as_float32(logits, target)
        loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        if self.gamma:
            one_minus_pt = torch.sigmoid(logits) * (1 - target) + torch.sigmoid(-logits) * target
            # (1-p_t)**gamma has an infinite derivative at 0 for gamma < 1; flooring at the smallest
            # normal float keeps the gradient finite (it is 0 below the floor, where the loss is ~0 anyway).
            loss = loss * one_minus_pt.clamp_min(torch.finfo(torch.float32).tiny).pow(self.gamma)
        if self.alpha is not None:
            loss = loss * (self.alpha * target + (1 - self.alpha) * (1 - target))
        return loss.mean()


@LOSSES.register("tversky")
class TverskyLoss(nn.Module):
    """Tversky loss (MLMI 2017); ``alpha`` weights false positives, ``beta`` false negatives.

    ``1 - (2 TP + smooth) / (2 TP + 2 alpha FP + 2 beta FN + smooth)`` on soft counts, per image then
    averaged. This is the usual index ``TP / (TP + alpha FP + beta FN)`` with numerator and denominator
    doubled, so that ``alpha = beta = 0.5`` reproduces ``DiceLoss`` exactly for the same ``smooth``
    (the undoubled form would equal Dice with ``2 * smooth``). ``beta > alpha`` favours recall.
    """

    def __init__(self, alpha: float = 0.5, beta: float = 0.5, smooth: float = 1.0) -> None:
        super().__init__()
        self.alpha = _check_real("alpha", alpha, minimum=0.0)
        self.beta = _check_real("beta", beta, minimum=0.0)
        if self.alpha + self.beta == 0:
            raise ConfigError("alpha and beta cannot both be 0 (the loss would be constant)")
        self.smooth = _check_real("smooth", smooth, minimum=0.0)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar mean per-image Tversky loss."""
        logits, target = _as_float32(logits, target)
        tp, p_sum, t_sum = _soft_counts(logits, target)
        fp = p_sum - tp
        fn = t_sum - tp
        index = (2 * tp + self.smooth) / (2 * tp + 2 * self.alpha * fp + 2 * self.beta * fn + self.smooth)
        return (1 - index).mean()


def loss_names() -> list[str]:
    """Registered loss names, sorted."""
    return LOSSES.names()


def create_loss(name: str, **kwargs: object) -> nn.Module:
    """Build the registered loss ``name``.

    Unknown names, unknown options and invalid values raise ``ConfigError`` naming the valid choices.
    """
    return LOSSES.create(name, **kwargs)
