"""The monitored metric picks the best epoch, the kept checkpoint and FitResult's best value."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import hpsearch.training.loop as loop_module
from hpsearch.models import create_model
from hpsearch.training.checkpoint import load_checkpoint
from hpsearch.training.config import RunConfig, TrainConfig
from hpsearch.training.loop import BestEpoch, FitResult, best_epoch_row, fit, improves

TINY = {"base_width": 4, "depth": 2}
# Validation scores per epoch, scripted so that the best Dice (epoch 2) and the best IoU (epoch 3) differ, as
# they can when mean per-image Dice and mean per-image IoU rank epochs differently.
SCRIPT = [(0.50, 0.40), (0.70, 0.45), (0.60, 0.50), (0.55, 0.42)]


def _row(epoch: int, dice: float, iou: float) -> dict[str, float]:
    return {"epoch": float(epoch), "val_dice": dice, "val_iou": iou}


@pytest.mark.parametrize(("monitor", "epoch", "value"), [("val_dice", 2, 0.70), ("val_iou", 3, 0.50)])
def test_best_epoch_follows_the_monitor(monitor: str, epoch: int, value: float) -> None:
    best = BestEpoch(monitor=monitor)
    kept = [e for e, (d, j) in enumerate(SCRIPT, 1) if best.offer(_row(e, d, j))]
    assert best.epoch == epoch and best.value == value
    assert (best.dice, best.iou) == SCRIPT[epoch - 1]  # the scores AT that epoch, not each metric's maximum
    assert kept[-1] == epoch


def test_ties_keep_the_earlier_epoch_and_nan_never_wins() -> None:
    best = BestEpoch(monitor="val_iou")
    assert best.offer(_row(1, 0.6, 0.4))
    assert not best.offer(_row(2, 0.9, 0.4))  # same IoU, better Dice: still epoch 1
    assert not best.offer(_row(3, 0.9, float("nan")))
    assert best.epoch == 1


@pytest.mark.parametrize("monitor", ["val_dice", "val_iou"])
def test_a_historys_best_row_is_the_epoch_fit_keeps(monitor: str) -> None:
    nan = float("nan")
    # A NaN first, a tie with the best later on: the first real best wins, as in BestEpoch.
    scores = [(nan, nan), *SCRIPT, (0.70, 0.50)]
    rows = [_row(e, d, j) for e, (d, j) in enumerate(scores, 1)]
    best = BestEpoch(monitor=monitor)
    for row in rows:
        best.offer(row)
    assert best_epoch_row(rows, monitor) is rows[best.epoch - 1]
    assert best.epoch == {"val_dice": 3, "val_iou": 4}[monitor]
    assert best_epoch_row([_row(1, nan, nan)], monitor) is None and best_epoch_row([], monitor) is None


def test_the_rule_follows_the_direction_ties_keep_the_first_and_nan_never_wins() -> None:
    assert improves(0.5, 0.4, "maximize") and not improves(0.4, 0.5, "maximize")
    assert improves(0.4, 0.5, "minimize") and not improves(0.5, 0.4, "minimize")
    assert not improves(0.5, 0.5, "maximize") and not improves(0.5, 0.5, "minimize")
    assert improves(0.0, None, "maximize") and improves(0.0, float("nan"), "minimize")
    assert not improves(float("nan"), None, "maximize") and not improves(float("nan"), 0.1, "minimize")
    rows = [_row(1, 0.3, 0.3), _row(2, 0.2, 0.2), _row(3, 0.2, 0.5)]
    assert best_epoch_row(rows, "val_dice", "minimize") is rows[1]


def _scripted_fit(monitor: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[FitResult, list]:
    """Run the real loop on a tiny model; only validation's scores come from ``SCRIPT``."""
    scores = iter(SCRIPT)

    def scripted_validation(*args: Any, **kwargs: Any) -> tuple[dict[str, float], None]:
        dice, iou = next(scores)
        return {"dice": dice, "iou": iou, "micro_dice": dice, "loss": 1.0 - dice}, None

    monkeypatch.setattr(loop_module, "evaluate_loader", scripted_validation)
    g = torch.Generator().manual_seed(0)
    batches = [
        (torch.randn(2, 3, 16, 16, generator=g), (torch.rand(2, 1, 16, 16, generator=g) > 0.5).float())
    ]
    cfg = TrainConfig(epochs=len(SCRIPT), lr=1e-2, device="cpu", monitor=monitor, compile="off")
    torch.manual_seed(0)
    model = create_model("unet", **TINY)
    snapshots: list[dict[str, torch.Tensor]] = []

    def snapshot(epoch: int, row: dict[str, float]) -> None:  # the weights as they were after each epoch
        snapshots.append({k: v.detach().clone() for k, v in model.state_dict().items()})

    extra = {
        "model_name": "unet",
        "model_kwargs": TINY,
        "config": RunConfig(train=cfg).model_dump(mode="json"),
    }
    result = fit(
        model,
        batches,
        batches,
        config=cfg,
        callbacks=[snapshot],
        checkpoint_path=tmp_path / "best.pt",
        checkpoint_extra=extra,
        progress=False,
    )
    return result, snapshots


def _same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_monitor_val_iou_keeps_the_best_iou_epoch_and_its_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result, snapshots = _scripted_fit("val_iou", tmp_path, monkeypatch)
    assert (result.monitor, result.best_epoch, result.best_value) == ("val_iou", 3, 0.50)
    assert (result.best_dice, result.best_iou) == (0.60, 0.50)  # at epoch 3, although Dice peaked at epoch 2
    _, _, ckpt = load_checkpoint(result.checkpoint_path)
    assert ckpt["epoch"] == 3 and ckpt["metrics"]["val_iou"] == 0.50
    assert _same_weights(ckpt["state_dict"], snapshots[2])
    assert not _same_weights(ckpt["state_dict"], snapshots[1])  # the best-Dice epoch's weights differ


def test_monitor_val_dice_keeps_the_best_dice_epoch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result, snapshots = _scripted_fit("val_dice", tmp_path, monkeypatch)
    assert (result.best_epoch, result.best_value, result.best_iou) == (2, 0.70, 0.45)
    _, _, ckpt = load_checkpoint(result.checkpoint_path)
    assert ckpt["epoch"] == 2 and _same_weights(ckpt["state_dict"], snapshots[1])


def test_summary_is_the_json_record_of_a_fit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result, _ = _scripted_fit("val_iou", tmp_path, monkeypatch)
    summary = json.loads(json.dumps(result.summary(), allow_nan=False))
    assert summary["monitor"] == "val_iou" and summary["best_value"] == 0.50 and summary["best_epoch"] == 3
    assert (summary["best_val_dice"], summary["best_val_iou"]) == (0.60, 0.50)
    assert summary["epochs_run"] == 4 and [h["val_iou"] for h in summary["history"]] == [j for _, j in SCRIPT]
    assert summary["checkpoint"] == str(tmp_path / "best.pt") and summary["peak_memory_mb"] is None
    empty = FitResult(-1.0, 0.0, 0, [], 0, 0.0, 0.0, "cpu", None)
    assert empty.summary()["best_value"] is None and empty.summary()["checkpoint"] is None


def test_monitor_accepts_only_the_two_metrics() -> None:
    with pytest.raises(ValueError, match="val_dice"):
        TrainConfig(monitor="val_loss")
