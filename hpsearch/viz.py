"""Pictures: training curves and worst-case galleries (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: workers and CI have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def plot_curves(history: Sequence[dict[str, float]], path: str | Path, *, title: str = "") -> Path:
    """Loss, Dice and IoU per epoch, with the best epoch marked."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    epochs = [int(h["epoch"]) for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(epochs, [h["train_loss"] for h in history], marker="o", label="train")
    axes[0].plot(epochs, [h["val_loss"] for h in history], marker="o", label="val")
    axes[0].set_title("loss")
    for ax, key in ((axes[1], "val_dice"), (axes[2], "val_iou")):
        ax.plot(epochs, [h[key] for h in history], marker="o", color="tab:green")
        ax.set_title(key.replace("_", " "))
        ax.set_ylim(0, 1)
    if history:
        best = max(history, key=lambda h: h["val_dice"])
        for ax in axes[1:]:
            ax.axvline(best["epoch"], color="grey", ls="--", lw=1, label=f"best epoch {int(best['epoch'])}")
            ax.legend(loc="lower right", fontsize=8)
    axes[0].legend(fontsize=8)
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return p


def _overlay(image: np.ndarray, mask: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    out = image.astype(np.float32).copy()
    m = mask.astype(bool)
    out[m] = 0.55 * out[m] + 0.45 * np.asarray(color, np.float32)
    return out.clip(0, 255).astype(np.uint8)


def save_gallery(
    images: Sequence[np.ndarray],
    truths: Sequence[np.ndarray],
    preds: Sequence[np.ndarray],
    scores: Sequence[float],
    names: Sequence[str],
    path: str | Path,
    *,
    title: str = "worst cases",
) -> Path:
    """One row per case: image, ground truth overlay, prediction overlay (with its Dice)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    n = max(1, len(images))
    fig, axes = plt.subplots(n, 3, figsize=(9, 3 * n), squeeze=False)
    for i, (img, gt, pr, sc, name) in enumerate(zip(images, truths, preds, scores, names, strict=True)):
        axes[i, 0].imshow(img)
        axes[i, 0].set_title(name, fontsize=8)
        axes[i, 1].imshow(_overlay(img, gt, (0, 255, 0)))
        axes[i, 1].set_title("ground truth", fontsize=8)
        axes[i, 2].imshow(_overlay(img, pr, (255, 0, 255)))
        axes[i, 2].set_title(f"prediction, Dice {sc:.3f}", fontsize=8)
    for ax in axes.ravel():
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(p, dpi=90)
    plt.close(fig)
    return p
