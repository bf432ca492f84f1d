"""Evaluate a checkpoint on a split of any dataset folder, at each mask's original resolution.

The model sees the image resized exactly as in training; its logits are upsampled (bilinear) to the
original mask size before thresholding, which is the convention the polyp-segmentation literature reports.
Scores come from ``training.metrics`` (the code validation uses), one image at a time at its own size.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from hpsearch.data.cache import resize_pair
from hpsearch.data.check import verify_dataset
from hpsearch.data.dataset import normalize
from hpsearch.data.discover import Pair
from hpsearch.data.io import portable_path, read_image, read_mask
from hpsearch.data.splits import split_for
from hpsearch.errors import DataError
from hpsearch.training.checkpoint import load_checkpoint
from hpsearch.training.config import RunConfig
from hpsearch.training.device import resolve_device
from hpsearch.training.metrics import SegMetrics, resize_logits_to
from hpsearch.training.viz import save_gallery

__all__ = [
    "CaseResult",
    "SplitName",
    "evaluate_checkpoint",
    "load_checkpoint",
    "select_stems",
    "split_source",
    "unsealed_warning",
]

SplitName = Literal["train", "val", "test", "all"]


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


def select_stems(
    cfg: RunConfig,
    data_dir: Path,
    split: SplitName,
    split_file: str | None,
    pairs: list[Pair] | None = None,
) -> list[str]:
    """The stems of ``split``, recomputed with the training run's split settings on this folder.

    ``split_file`` replaces the run's own split file. ``pairs`` is the folder's verified listing when the
    caller already has it (verifying reads every file).
    """
    if pairs is None:
        pairs = verify_dataset(data_dir)
    if split == "all":
        return [p.stem for p in pairs]
    settings = cfg.data.model_copy(update={"split_file": split_file}) if split_file else cfg.data
    try:
        _, parts = split_for(settings, data_dir, pairs=pairs)
    except DataError as exc:
        raise DataError(f"{exc}; to evaluate on a different dataset use --split all") from None
    return list(getattr(parts, split))


def split_source(cfg: RunConfig, split: SplitName, split_file: str | None) -> str:
    """Which split is scored, in words: a sealed split file's name, or the seeded random carve."""
    if split == "all":
        return "every pair in the folder"
    chosen = split_file or cfg.data.split_file
    if chosen:
        return f"split file {chosen}"
    return f"the seeded random split (split_seed {cfg.data.split_seed}, no split_file)"


def unsealed_warning(cfg: RunConfig, split: SplitName, split_file: str | None) -> str | None:
    """A warning when ``test`` is not a sealed test set: without a split file it is a seeded random carve of
    this folder, which differs from an official test set (for Kvasir-SEG, the 120 of kvasir-official)."""
    if split != "test" or split_file or cfg.data.split_file:
        return None
    return (
        "the run's config has no data.split_file, so 'test' is a seeded random carve of this folder, not a "
        "sealed test set; pass --split-file (for Kvasir-SEG: --split-file kvasir-official, its 120 test "
        "images) to score the official one"
    )


@dataclass
class _Scores:
    """Per-image results, the streaming metrics over them, and the ``k`` worst cases kept for a gallery."""

    k: int
    cases: list[CaseResult] = field(default_factory=list)
    metrics: SegMetrics = field(default_factory=SegMetrics)
    worst: list[tuple[float, str, np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)

    def add(self, stem: str, image: np.ndarray, gt: np.ndarray, logits: torch.Tensor) -> None:
        """Score one image: ``logits`` (1, h, w) at the model's size, ``gt`` (H, W) {0, 1} at its own size."""
        up = resize_logits_to(logits[None], (gt.shape[0], gt.shape[1]))
        target = torch.from_numpy(gt).to(up.device, torch.float32)[None, None]
        dice, iou = (float(v[0]) for v in self.metrics.update(up, target))
        pred = (up[0, 0] >= 0).cpu().numpy()  # logit >= 0  <=>  probability >= 0.5, as in the metrics
        g = gt.astype(bool)
        self.cases.append(
            CaseResult(stem, dice, iou, gt.shape[0], gt.shape[1], float(g.mean()), float(pred.mean()))
        )
        self.worst.append((dice, stem, image, g, pred))
        self.worst = sorted(self.worst, key=lambda t: t[0])[: max(self.k, 0)]  # only the k worst in memory


def _score_pairs(
    model: torch.nn.Module, pairs: Sequence[Pair], *, size: int, device: torch.device, batch_size: int, k: int
) -> _Scores:
    """Predict in batches at the training size; score each image at its original resolution."""
    scores = _Scores(k=k)
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        originals = [(read_image(p.image), read_mask(p.mask)) for p in chunk]
        x = np.stack([normalize(resize_pair(img, m, size)[0]) for img, m in originals])
        logits = model(torch.from_numpy(x).to(device)).float()
        for pair, (img, gt), lg in zip(chunk, originals, logits, strict=True):
            scores.add(pair.stem, img, gt, lg)
    return scores


def _write_per_case(path: Path, cases: Sequence[CaseResult]) -> None:
    with path.open("w", newline="") as fh:
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
    scores = _score_pairs(
        model, [by_stem[s] for s in stems], size=cfg.data.image_size, device=dev, batch_size=batch_size, k=k
    )
    summary = scores.metrics.compute()
    metrics: dict[str, Any] = {
        "split": split,
        "split_source": split_source(cfg, split, split_file),
        "n": summary["n"],
        "dice_mean": summary["dice"],
        "dice_sd": summary["dice_sd"],
        "iou_mean": summary["iou"],
        "iou_sd": summary["iou_sd"],
        "micro_dice": summary["micro_dice"],
        "threshold": 0.5,
        "resolution": "original mask resolution (logits upsampled bilinearly)",
        "empty_policy": "empty ground truth + empty prediction scores 1.0",
        # Named relative to the output folder: the record carries no machine's folders.
        "checkpoint": portable_path(checkpoint, out_dir),
        "checkpoint_epoch": ckpt.get("epoch"),
        "data_dir": portable_path(ddir, out_dir),
        "model": cfg.model.name,
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    _write_per_case(out / "per_case.csv", scores.cases)
    if scores.worst:
        dice, names, images, truths, preds = zip(*scores.worst, strict=True)
        title = f"{len(names)} worst {split} cases ({cfg.model.name})"
        save_gallery(images, truths, preds, dice, names, out / "worst.png", title=title)
    return metrics
