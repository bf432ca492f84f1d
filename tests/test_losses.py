"""Tests for hpsearch.training.losses against hand-computed values on a 2x2 example."""

from __future__ import annotations

import math

import pytest
import torch

from hpsearch.errors import ConfigError
from hpsearch.training.losses import LOSSES, create_loss, loss_names

LN3 = math.log(3)
# sigmoid(ln 3) = 3/4, sigmoid(0) = 1/2, sigmoid(-ln 3) = 1/4, so every term below is a simple fraction.
LOGITS = torch.tensor([[[[LN3, 0.0], [-LN3, LN3]]]])  # probabilities 0.75, 0.5, 0.25, 0.75
TARGET = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])

# Per-pixel BCE: -ln 0.75, -ln 0.5, -ln 0.25, -ln 0.25.
BCE = (math.log(4 / 3) + math.log(2) + math.log(4) + math.log(4)) / 4
# Soft counts: TP = 0.75 + 0.25 = 1, sum p = 2.25, sum t = 2 -> FP = 1.25, FN = 1.
DICE = 1 - (2 * 1 + 1) / (2.25 + 2 + 1)  # = 3/7


def value(name: str, logits: torch.Tensor = LOGITS, target: torch.Tensor = TARGET, **kw: object) -> float:
    return create_loss(name, **kw)(logits, target).item()


def test_names() -> None:
    assert loss_names() == ["bce", "bce_dice", "dice", "focal", "tversky"]
    assert list(LOSSES) == loss_names()


def test_bce_hand_value() -> None:
    assert value("bce") == pytest.approx(BCE, rel=1e-6)


def test_bce_pos_weight_hand_value() -> None:
    # pos_weight doubles the foreground terms (pixels 1 and 3).
    expected = (2 * math.log(4 / 3) + math.log(2) + 2 * math.log(4) + math.log(4)) / 4
    assert value("bce", pos_weight=2.0) == pytest.approx(expected, rel=1e-6)


def test_dice_hand_value() -> None:
    assert DICE == pytest.approx(3 / 7)
    assert value("dice") == pytest.approx(DICE, rel=1e-6)
    assert value("dice", smooth=0.0) == pytest.approx(1 - 2 / 4.25, rel=1e-6)


def test_dice_is_per_image_then_mean() -> None:
    # Second image: all probabilities 1/4, empty target -> TP 0, sum p 1, sum t 0 -> dice (0+1)/(1+1) = 1/2.
    logits = torch.cat([LOGITS, torch.full_like(LOGITS, -LN3)])
    target = torch.cat([TARGET, torch.zeros_like(TARGET)])
    expected = (3 / 7 + 1 / 2) / 2
    pooled = 1 - 3 / (3.25 + 2 + 1)  # what a batch-pooled Dice would give instead
    assert value("dice", logits, target) == pytest.approx(expected, rel=1e-6)
    assert abs(expected - pooled) > 0.05


def test_bce_dice_hand_value() -> None:
    assert value("bce_dice") == pytest.approx(BCE + DICE, rel=1e-6)
    assert value("bce_dice", bce_weight=0.5, dice_weight=2.0) == pytest.approx(0.5 * BCE + 2 * DICE, rel=1e-6)


def test_focal_hand_value() -> None:
    # 1 - p_t per pixel: 0.25, 0.5, 0.75, 0.75; alpha_t: 0.25 for t=1, 0.75 for t=0.
    expected = (
        0.25 * 0.25**2 * math.log(4 / 3)
        + 0.75 * 0.5**2 * math.log(2)
        + 0.25 * 0.75**2 * math.log(4)
        + 0.75 * 0.75**2 * math.log(4)
    ) / 4
    assert value("focal") == pytest.approx(expected, rel=1e-6)


def test_focal_reduces_to_bce() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 1, 5, 6) * 4
    target = (torch.rand(2, 1, 5, 6) > 0.5).float()
    assert value("focal", logits, target, alpha=None, gamma=0.0) == pytest.approx(
        value("bce", logits, target), rel=1e-6
    )
    assert value("focal", alpha=None, gamma=0.0) == pytest.approx(BCE, rel=1e-6)


def test_tversky_hand_value() -> None:
    # 1 - (2 TP + s) / (2 TP + 2 alpha FP + 2 beta FN + s) with TP 1, FP 1.25, FN 1, s 1.
    expected = 1 - 3 / (2 + 2 * 0.3 * 1.25 + 2 * 0.7 * 1 + 1)
    assert value("tversky", alpha=0.3, beta=0.7) == pytest.approx(expected, rel=1e-6)
    # alpha weights false positives: raising it (FP 1.25 > FN 1) raises the loss more than raising beta.
    assert value("tversky", alpha=0.9, beta=0.5) > value("tversky", alpha=0.5, beta=0.9)


def test_tversky_half_half_equals_dice() -> None:
    torch.manual_seed(1)
    logits = torch.randn(3, 1, 7, 5) * 3
    target = (torch.rand(3, 1, 7, 5) > 0.6).float()
    for smooth in (0.0, 1.0, 5.0):
        assert value("tversky", logits, target, smooth=smooth) == pytest.approx(
            value("dice", logits, target, smooth=smooth), rel=1e-6
        )
    assert value("tversky") == pytest.approx(DICE, rel=1e-6)


@pytest.mark.parametrize(
    ("name", "kw"),
    [
        ("bce", {}),
        ("bce", {"pos_weight": 3.0}),
        ("dice", {}),
        ("bce_dice", {}),
        ("focal", {}),
        ("focal", {"gamma": 0.5}),
        ("focal", {"alpha": None, "gamma": 0.0}),
        ("tversky", {"alpha": 0.3, "beta": 0.7}),
    ],
)
def test_extreme_logits_finite(name: str, kw: dict[str, object]) -> None:
    # Confidently right and confidently wrong pixels, in both classes.
    logits = torch.tensor([[[[100.0, -100.0], [-100.0, 100.0]]]], requires_grad=True)
    target = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])
    loss = create_loss(name, **kw)(logits, target)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(logits.grad).all()
    if name == "bce":
        # Two pixels cost ~100 nats each (times pos_weight for the foreground one), two cost ~0.
        pw = kw.get("pos_weight", 1.0)
        assert loss.item() == pytest.approx((pw * 100 + 100) / 4, rel=1e-4)


@pytest.mark.parametrize("name", ["bce", "dice", "bce_dice", "focal", "tversky"])
def test_bf16_inputs_computed_in_float32(name: str) -> None:
    torch.manual_seed(0)
    logits = (torch.randn(2, 1, 16, 16) * 3).bfloat16()
    target = (torch.rand(2, 1, 16, 16) > 0.5).float()
    loss_fn = create_loss(name)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = loss_fn(logits, target.bfloat16())
    assert out.dtype == torch.float32
    assert out.item() == pytest.approx(loss_fn(logits.float(), target).item(), rel=1e-6)


def test_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        create_loss("dice")(LOGITS, TARGET[0])


@pytest.mark.parametrize(
    ("name", "kw", "pattern"),
    [
        ("nope", {}, "unknown loss 'nope'.*bce, bce_dice, dice, focal, tversky"),
        ("dice", {"smoth": 1.0}, "smoth.*valid options: smooth"),
        ("bce", {"pos_weight": 0.0}, "pos_weight must be a finite number > 0"),
        ("dice", {"smooth": -1.0}, "smooth must be"),
        ("focal", {"alpha": 1.5}, "alpha must be in"),
        ("focal", {"gamma": -1.0}, "gamma must be"),
        ("tversky", {"alpha": 0.0, "beta": 0.0}, "cannot both be 0"),
        ("bce_dice", {"bce_weight": "1"}, "bce_weight must be"),
    ],
)
def test_config_errors(name: str, kw: dict[str, object], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        create_loss(name, **kw)
