"""Evaluate a checkpoint on a split of any dataset folder, at each mask's original resolution.

The model sees the image resized exactly as in training; its logits are upsampled (bilinear) to the
original mask size before thresholding, which is the convention the polyp-segmentation literature reports.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from hpsearch.data.cache import resize_pair
from hpsearch.data.check import verify_dataset
from hpsearch.data.dataset import normalize
from hpsearch.data.discover import Pair
from hpsearch.data.io import read_image, read_mask
from hpsearch.data.splits import make_split
from hpsearch.errors import ConfigError, DataError
from hpsearch.models import create_model
from hpsearch.training.config import RunConfig
from hpsearch.training.device import resolve_device
from hpsearch.training.fit import CHECKPOINT_FORMAT
from hpsearch.training.metrics import resize_logits_to
from hpsearch.training.viz import save_gallery

SplitName = Literal["train", "val", "test", "all"]


def load_checkpoint(path: str | Path) -> tuple[torch.nn.Module, RunConfig, dict[str, Any]]:
    """Rebuild the model from a self-describing checkpoint; returns (model, config, raw checkpoint)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"checkpoint '{p}' does not exist; pass the best.pt written by `hpsearch train`")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(
            f"checkpoint '{p}' cannot be read ({type(exc).__name__}); is it an hpsearch checkpoint?"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(
            f"checkpoint '{p}' is not an hpsearch checkpoint (expected format {CHECKPOINT_FORMAT})"
        )
    model = create_model(ckpt["model_name"], **ckpt["model_kwargs"])
    model.load_state_dict(ckpt["state_dict"])
    return model, RunConfig.model_validate(ckpt["config"]), ckpt


@dataclass
class CaseResult:
    """One evaluated image."""

    stem: str
    dice: float
    iou: float
    height: int
    width: int
    gt_fraction: float
    pred_fraction: float


def _dice_iou(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float, int, int, int]:
    tp = int(np.count_nonzero(pred & gt))
    fp = int(np.count_nonzero(pred & ~gt))
    fn = int(np.count_nonzero(~pred & gt))
    if tp + fp + fn == 0:  # empty truth and empty prediction: a perfect answer
        return 1.0, 1.0, tp, fp, fn
    return 2 * tp / (2 * tp + fp + fn), tp / (tp + fp + fn), tp, fp, fn


def select_stems(
    cfg: RunConfig,
    data_dir: Path,
    split: SplitName,
    split_file: str | None,
    pairs: list[Pair] | None = None,
) -> list[str]:
    """The stems of ``split``, recomputed with the training run's split settings on this folder.

    ``pairs`` is the folder's verified listing when the caller already has it (verifying reads every file).
    """
    from hpsearch.data.splits import resolve_split_file

    if pairs is None:
        pairs = verify_dataset(data_dir)
    if split == "all":
        return [p.stem for p in pairs]
    try:
        parts = make_split(
            pairs,
            split_file=resolve_split_file(split_file or cfg.data.split_file, data_dir),
            val_fraction=cfg.data.val_fraction,
            test_fraction=cfg.data.test_fraction,
            seed=cfg.data.split_seed,
        )
    except DataError as exc:
        raise DataError(f"{exc}; to evaluate on a different dataset use --split all") from None
    return list(getattr(parts, split))


@torch.no_grad()
def evaluate_checkpoint(
    checkpoint: str | Path,
    data_dir: str | Path,
    *,
    out_dir: str | Path,
    split: SplitName = "test",
    split_file: str | None = None,
    k: int = 4,
    device: str = "auto",
    batch_size: int = 16,
) -> dict[str, Any]:
    """Write metrics.json, per_case.csv and worst.png for ``split``; returns the metrics dict."""
    model, cfg, ckpt = load_checkpoint(checkpoint)
    ddir = Path(data_dir)
    pairs = verify_dataset(ddir)
    stems = select_stems(cfg, ddir, split, split_file, pairs)
    if not stems:
        raise DataError(f"split '{split}' of {ddir} is empty; nothing to evaluate")
    by_stem = {p.stem: p for p in pairs}
    dev = resolve_device(device)
    model.eval().to(dev)
    size = cfg.data.image_size
    cases: list[CaseResult] = []
    tp = fp = fn = 0
    kept: list[tuple[float, str, np.ndarray, np.ndarray, np.ndarray]] = []
    for start in range(0, len(stems), batch_size):
        chunk = stems[start : start + batch_size]
        originals = [(read_image(by_stem[s].image), read_mask(by_stem[s].mask)) for s in chunk]
        x = torch.from_numpy(np.stack([normalize(resize_pair(img, m, size)[0]) for img, m in originals])).to(
            dev
        )
        logits = model(x).float()
        for stem, (img, gt), lg in zip(chunk, originals, logits, strict=True):
            up = resize_logits_to(lg[None], (gt.shape[0], gt.shape[1]))[0, 0]
            pred = (up >= 0).cpu().numpy()  # logit >= 0  <=>  probability >= 0.5
            g = gt.astype(bool)
            d, j, a, b, c = _dice_iou(pred, g)
            tp, fp, fn = tp + a, fp + b, fn + c
            cases.append(
                CaseResult(stem, d, j, gt.shape[0], gt.shape[1], float(g.mean()), float(pred.mean()))
            )
            kept.append((d, stem, img, g, pred))
            kept = sorted(kept, key=lambda t: t[0])[: max(k, 0)]  # keep only the k worst in memory
    dice = np.array([c.dice for c in cases])
    iou = np.array([c.iou for c in cases])
    if np.any(iou > dice + 1e-9):
        raise AssertionError("IoU > Dice for some image: the metric code is wrong")
    def sd(a):
        return float(a.std(ddof=1)) if len(a) > 1 else 0.0
    metrics: dict[str, Any] = {
        "split": split,
        "n": len(cases),
        "dice_mean": float(dice.mean()),
        "dice_sd": sd(dice),
        "iou_mean": float(iou.mean()),
        "iou_sd": sd(iou),
        "micro_dice": 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 1.0,
        "threshold": 0.5,
        "resolution": "original mask resolution (logits upsampled bilinearly)",
        "empty_policy": "empty ground truth + empty prediction scores 1.0",
        "checkpoint": str(checkpoint),
        "checkpoint_epoch": ckpt.get("epoch"),
        "data_dir": str(ddir),
        "model": cfg.model.name,
    }
    if not all(math.isfinite(v) for v in (metrics["dice_mean"], metrics["iou_mean"])):
        raise AssertionError("non-finite metrics")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    with (out / "per_case.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["stem", "dice", "iou", "height", "width", "gt_fraction", "pred_fraction"])
        for c in cases:
            w.writerow(
                [
                    c.stem,
                    f"{c.dice:.6f}",
                    f"{c.iou:.6f}",
                    c.height,
                    c.width,
                    f"{c.gt_fraction:.6f}",
                    f"{c.pred_fraction:.6f}",
                ]
            )
    if kept:
        save_gallery(
            [t[2] for t in kept],
            [t[3] for t in kept],
            [t[4] for t in kept],
            [t[0] for t in kept],
            [t[1] for t in kept],
            out / "worst.png",
            title=f"{len(kept)} worst {split} cases ({cfg.model.name})",
        )
    return metrics
