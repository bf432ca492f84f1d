"""Tests for hpsearch.training.metrics against an independent numpy computation on flattened masks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hpsearch.training.metrics import SegMetrics, dice_iou_per_image, micro_dice, resize_logits_to


def numpy_reference(logits: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image Dice/IoU from sigmoid probabilities >= 0.5, on flattened boolean masks."""
    dice, iou = [], []
    for lg, tg in zip(logits, target, strict=True):
        pred = (1.0 / (1.0 + np.exp(-lg.astype(np.float64)))).ravel() >= 0.5
        gt = tg.ravel() >= 0.5
        inter = np.count_nonzero(pred & gt)
        union = np.count_nonzero(pred | gt)
        total = np.count_nonzero(pred) + np.count_nonzero(gt)
        dice.append(1.0 if total == 0 else 2 * inter / total)
        iou.append(1.0 if union == 0 else inter / union)
    return np.array(dice), np.array(iou)


def random_batch(seed: int, n: int = 6, h: int = 13, w: int = 17) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, 1, h, w, generator=g) + torch.randn(n, 1, 1, 1, generator=g)
    target = (torch.rand(n, 1, h, w, generator=g) < torch.rand(n, 1, 1, 1, generator=g)).float()
    # Edge cases: empty GT + empty prediction, and empty GT + some prediction.
    logits[0], target[0] = -1.0, 0.0
    target[1] = 0.0
    logits[1, 0, 0, :3] = 2.0
    return logits, target


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_numpy_reference(seed: int) -> None:
    logits, target = random_batch(seed)
    dice, iou = dice_iou_per_image(logits, target)
    ref_dice, ref_iou = numpy_reference(logits.numpy(), target.numpy())
    assert dice.shape == iou.shape == (6,)
    assert dice.dtype == torch.float32
    np.testing.assert_allclose(dice.numpy(), ref_dice, rtol=1e-6)
    np.testing.assert_allclose(iou.numpy(), ref_iou, rtol=1e-6)
    # Not degenerate: most random images score strictly between 0 and 1.
    assert ((ref_dice > 0) & (ref_dice < 1)).sum() >= 3


def test_iou_dice_relation() -> None:
    logits, target = random_batch(3, n=8)
    dice, iou = dice_iou_per_image(logits, target)
    # The exact identity IoU = D / (2 - D) (so IoU <= Dice), on images scoring strictly inside (0, 1).
    assert ((dice > 0) & (dice < 1)).sum() >= 4
    torch.testing.assert_close(iou, dice / (2 - dice))


def test_empty_cases() -> None:
    target = torch.zeros(3, 1, 4, 4)
    target[2, 0, 1, 1] = 1.0
    logits = torch.full((3, 1, 4, 4), -5.0)
    logits[1, 0, 0, 0] = 5.0  # predicts something on an empty GT
    dice, iou = dice_iou_per_image(logits, target)
    assert dice.tolist() == [1.0, 0.0, 0.0]  # empty/empty, empty GT + prediction, missed polyp
    assert iou.tolist() == [1.0, 0.0, 0.0]
    assert micro_dice(logits[:1], target[:1]).item() == 1.0


def test_micro_differs_from_mean() -> None:
    target = torch.zeros(2, 1, 10, 10)
    logits = torch.full((2, 1, 10, 10), -4.0)
    target[0, 0, :5] = 1.0  # 50 GT pixels
    logits[0, 0, :4] = 4.0  # 40 predicted, all correct
    target[1, 0, 9, :2] = 1.0  # 2 GT pixels
    logits[1, 0, 0, :2] = 4.0  # 2 predicted, both wrong
    dice, _ = dice_iou_per_image(logits, target)
    assert dice.tolist() == pytest.approx([80 / 90, 0.0])
    assert dice.mean().item() == pytest.approx(4 / 9)
    assert micro_dice(logits, target).item() == pytest.approx(2 * 40 / (42 + 52))  # = 40/47


def test_threshold_semantics() -> None:
    target = torch.ones(1, 1, 1, 3)
    # A logit of exactly 0 is probability 0.5 and counts as foreground (>=); tiny negatives do not.
    logits = torch.tensor([[[[0.0, -1e-6, 1e-6]]]])
    dice, iou = dice_iou_per_image(logits, target)
    assert dice.item() == pytest.approx(2 * 2 / (2 + 3))
    assert iou.item() == pytest.approx(2 / 3)
    # Threshold 0.75 cuts at logit ln 3.
    logits = torch.tensor([[[[math.log(3) + 0.01, math.log(3) - 0.01, 5.0]]]])
    assert dice_iou_per_image(logits, target, threshold=0.75)[1].item() == pytest.approx(2 / 3)
    # Probabilities exactly at the threshold count as foreground too.
    probs = torch.tensor([[[[0.5, 0.49, 0.9]]]])
    assert dice_iou_per_image(probs, target, from_logits=False)[1].item() == pytest.approx(2 / 3)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        dice_iou_per_image(torch.zeros(2, 1, 4, 4), torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="threshold"):
        dice_iou_per_image(torch.zeros(1, 4), torch.zeros(1, 4), threshold=1.0)


def test_seg_metrics_streaming() -> None:
    a_logits, a_target = random_batch(4, n=5, h=9, w=11)
    b_logits, b_target = random_batch(5, n=3, h=20, w=7)  # a different size, as at original resolution
    m = SegMetrics()
    m.update(a_logits, a_target)
    m.update(b_logits, b_target)
    ref = [numpy_reference(lg.numpy(), tg.numpy()) for lg, tg in ((a_logits, a_target), (b_logits, b_target))]
    ref_dice = np.concatenate([r[0] for r in ref])
    ref_iou = np.concatenate([r[1] for r in ref])
    out = m.compute()
    assert set(out) == {"dice", "iou", "dice_sd", "iou_sd", "micro_dice", "n"}
    assert out["n"] == 8
    assert out["dice"] == pytest.approx(ref_dice.mean(), rel=1e-6)
    assert out["iou"] == pytest.approx(ref_iou.mean(), rel=1e-6)
    assert out["dice_sd"] == pytest.approx(ref_dice.std(ddof=1), rel=1e-5)
    assert out["iou_sd"] == pytest.approx(ref_iou.std(ddof=1), rel=1e-5)
    # Micro Dice over all pixels of both batches, by hand from flattened masks.
    pred = np.concatenate([a_logits.numpy().ravel() >= 0, b_logits.numpy().ravel() >= 0])
    gt = np.concatenate([a_target.numpy().ravel() >= 0.5, b_target.numpy().ravel() >= 0.5])
    ref_micro = 2 * np.count_nonzero(pred & gt) / (np.count_nonzero(pred) + np.count_nonzero(gt))
    assert out["micro_dice"] == pytest.approx(ref_micro, rel=1e-6)
    dice, iou = m.per_image()
    np.testing.assert_allclose(dice.numpy(), ref_dice, rtol=1e-6)
    np.testing.assert_allclose(iou.numpy(), ref_iou, rtol=1e-6)


def test_seg_metrics_single_image_and_reset() -> None:
    m = SegMetrics()
    with pytest.raises(ValueError, match="before any update"):
        m.compute()
    m.update(torch.full((1, 1, 3, 3), -1.0), torch.zeros(1, 1, 3, 3))
    out = m.compute()
    assert out == {"dice": 1.0, "iou": 1.0, "dice_sd": 0.0, "iou_sd": 0.0, "micro_dice": 1.0, "n": 1}
    m.reset()
    assert m.per_image()[0].numel() == 0


def test_resize_logits_to_hand_values() -> None:
    logits = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])  # = 2 * row + col, linear
    # Bilinear, align_corners=False, 2x: source coordinates 0 (clamped), 0.25, 0.75, 1 (clamped).
    coords = [0.0, 0.25, 0.75, 1.0]
    expected = torch.tensor([[[[2 * r + c for c in coords] for r in coords]]])
    out = resize_logits_to(logits.bfloat16(), (4, 4))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, expected)
    assert resize_logits_to(logits, (3, 5)).shape == (1, 1, 3, 5)
    assert torch.equal(resize_logits_to(logits, (2, 2)), logits)


def test_seg_metrics_update_returns_the_batch_scores() -> None:
    a_logits, a_target = random_batch(6, n=4)
    b_logits, b_target = random_batch(7, n=3, h=5, w=9)
    m = SegMetrics()
    m.update(a_logits, a_target)
    dice, iou = m.update(b_logits, b_target)
    ref_dice, ref_iou = numpy_reference(b_logits.numpy(), b_target.numpy())
    np.testing.assert_allclose(dice.numpy(), ref_dice, rtol=1e-6)
    np.testing.assert_allclose(iou.numpy(), ref_iou, rtol=1e-6)
