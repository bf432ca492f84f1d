"""Segmentation metrics: per-image Dice/IoU, dataset-level (micro) Dice and a streaming accumulator.

Predictions are binarised at ``probability >= threshold`` (0.5 by default; a pixel exactly at the threshold
counts as foreground) and targets at ``>= 0.5``. Scores are computed per image on the tensors' own device
without Python loops over images.

Empty masks: an image whose ground truth is empty scores 1.0 for both Dice and IoU when the prediction is
empty too, and 0.0 when anything is predicted. (Dice and IoU are 0/0 there; we score "correctly found
nothing" as perfect.)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["SegMetrics", "dice_iou_per_image", "micro_dice", "resize_logits_to"]


def _binarise(
    logits: torch.Tensor, target: torch.Tensor, threshold: float, from_logits: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean prediction and ground truth, each flattened to (N, pixels)."""
    if logits.shape != target.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} differ in shape")
    if logits.dim() < 2:
        raise ValueError(f"expected a batch (N, ...) of images, got shape {tuple(logits.shape)}")
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    if from_logits:
        # sigmoid is monotonic, so sigmoid(x) >= t  <=>  x >= log(t / (1 - t)). Comparing logits skips a
        # full-resolution sigmoid and the rounding that would map large logits to exactly 1.0 or 0.0;
        # at t = 0.5 the cut is exactly 0.0.
        pred = logits >= math.log(threshold / (1.0 - threshold))
    else:
        pred = logits >= threshold
    return pred.flatten(1), (target >= 0.5).flatten(1)


def _counts(pred: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-image integer (intersection, predicted pixels, ground-truth pixels), shape (N,)."""
    return (pred & gt).sum(1), pred.sum(1), gt.sum(1)


def _dice_iou_from_counts(
    inter: torch.Tensor, pred_sum: torch.Tensor, gt_sum: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    total = pred_sum + gt_sum
    union = total - inter
    # Counts stay int64 until here so large images sum exactly; float32 is exact below 2**24 pixels.
    inter_f, total_f, union_f = inter.float(), total.float(), union.float()
    empty = total == 0  # both masks empty: scored 1.0 by convention (see module docstring)
    one = torch.ones_like(inter_f)
    dice = torch.where(empty, one, 2 * inter_f / total_f.clamp_min(1))
    iou = torch.where(empty, one, inter_f / union_f.clamp_min(1))
    return dice, iou


@torch.no_grad()
def dice_iou_per_image(
    logits: torch.Tensor, target: torch.Tensor, *, threshold: float = 0.5, from_logits: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image Dice and IoU, each a float32 tensor of shape (N,) on the inputs' device.

    ``logits`` and ``target`` share a shape (N, ...). The prediction is ``sigmoid(logits) >= threshold``
    (``logits >= threshold`` when ``from_logits=False``, i.e. for probabilities). An empty ground truth
    with an empty prediction scores 1.0 for both metrics; with a non-empty prediction it scores 0.0.
    """
    pred, gt = _binarise(logits, target, threshold, from_logits)
    return _dice_iou_from_counts(*_counts(pred, gt))


@torch.no_grad()
def micro_dice(
    logits: torch.Tensor, target: torch.Tensor, *, threshold: float = 0.5, from_logits: bool = True
) -> torch.Tensor:
    """Dataset-level Dice: ``2 sum(TP) / (sum(pred) + sum(gt))`` over all pixels of all images (0-d tensor).

    Large masks dominate it, unlike the mean of per-image Dice. 1.0 when every mask is empty.
    """
    pred, gt = _binarise(logits, target, threshold, from_logits)
    inter, pred_sum, gt_sum = _counts(pred, gt)
    dice, _ = _dice_iou_from_counts(inter.sum(), pred_sum.sum(), gt_sum.sum())
    return dice


def resize_logits_to(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinearly resize logits (N, C, h, w) to ``size = (H, W)``, returning float32.

    Used to score test predictions at the original mask resolution, as the literature does. Logits are
    interpolated rather than thresholded masks so the cut at 0.5 happens once, at full resolution.
    """
    if logits.dim() != 4:
        raise ValueError(f"expected logits of shape (N, C, h, w), got {tuple(logits.shape)}")
    size = (int(size[0]), int(size[1]))
    if tuple(logits.shape[-2:]) == size:
        return logits.float()
    return F.interpolate(logits.float(), size=size, mode="bilinear", align_corners=False)


class SegMetrics:
    """Streaming Dice/IoU over batches; keeps per-image scores on the device and syncs only in ``compute``.

    Images may differ in size between ``update`` calls (e.g. at original resolution). Empty-mask
    convention as in ``dice_iou_per_image``.
    """

    def __init__(self, *, threshold: float = 0.5, from_logits: bool = True) -> None:
        self.threshold = threshold
        self.from_logits = from_logits
        self.reset()

    def reset(self) -> None:
        """Forget everything seen so far."""
        self._dice: list[torch.Tensor] = []
        self._iou: list[torch.Tensor] = []
        self._inter: torch.Tensor | None = None
        self._total: torch.Tensor | None = None

    @torch.no_grad()
    def update(self, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add a batch (N, ...) of logits (or probabilities) and targets; no host sync.

        Returns the batch's per-image (dice, iou), each of shape (N,) on the device.
        """
        pred, gt = _binarise(logits, target, self.threshold, self.from_logits)
        inter, pred_sum, gt_sum = _counts(pred, gt)
        dice, iou = _dice_iou_from_counts(inter, pred_sum, gt_sum)
        self._dice.append(dice)
        self._iou.append(iou)
        inter_sum, total_sum = inter.sum(), (pred_sum + gt_sum).sum()
        if self._inter is None or self._total is None:
            self._inter, self._total = inter_sum, total_sum
        else:
            self._inter = self._inter + inter_sum
            self._total = self._total + total_sum
        return dice, iou

    def per_image(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-image (dice, iou) tensors in update order, on the device (for galleries and worst-k)."""
        if not self._dice:
            return torch.empty(0), torch.empty(0)
        return torch.cat(self._dice), torch.cat(self._iou)

    def compute(self) -> dict[str, float | int]:
        """``{"dice", "iou"}`` means of per-image scores, their sample SDs ``dice_sd``/``iou_sd`` (0.0 for a
        single image), ``micro_dice`` and the image count ``n``. Raises ``ValueError`` if nothing was added.
        """
        if not self._dice or self._inter is None or self._total is None:
            raise ValueError("SegMetrics.compute() called before any update()")
        dice, iou = self.per_image()
        n = dice.numel()
        micro = torch.where(
            self._total == 0,
            torch.ones_like(dice[0]),
            2 * self._inter.float() / self._total.float().clamp_min(1),
        )
        if n > 1:
            sds = torch.stack([dice.std(), iou.std()])
        else:
            sds = torch.zeros(2, device=dice.device)
        # One transfer for all scalars instead of a sync per .item().
        vals = torch.stack([dice.mean(), iou.mean(), sds[0], sds[1], micro]).tolist()
        return {
            "dice": vals[0],
            "iou": vals[1],
            "dice_sd": vals[2],
            "iou_sd": vals[3],
            "micro_dice": vals[4],
            "n": n,
        }
