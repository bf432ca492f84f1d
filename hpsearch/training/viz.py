"""Pictures: training curves (matplotlib) and worst-case galleries (OpenCV); no display needed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from hpsearch.training.loop import best_epoch_row
from hpsearch.training.metric_table import DEFAULT_METRIC
from hpsearch.training.outputs import atomic_output

# Height in pixels of a gallery's caption bars.
_BAR = 24


def plot_curves(
    history: Sequence[dict[str, float]], path: str | Path, *, title: str = "", monitor: str = DEFAULT_METRIC
) -> Path:
    """Loss, Dice and IoU per epoch, with the best epoch by ``monitor`` marked (``fit``'s rule)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    epochs = [int(h["epoch"]) for h in history]
    # The object API (no pyplot): no global figure registry, nothing to close, safe in threads.
    # Fixed margins instead of a layout engine: tight/constrained layout doubled the cost of this picture,
    # which every trial draws.
    fig = Figure(figsize=(13, 3.6))
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.15, top=0.8 if title else 0.9, wspace=0.22)
    axes = fig.subplots(1, 3)
    axes[0].plot(epochs, [h["train_loss"] for h in history], marker="o", label="train")
    axes[0].plot(epochs, [h["val_loss"] for h in history], marker="o", label="val")
    axes[0].set_title("loss")
    for ax, key in ((axes[1], "val_dice"), (axes[2], "val_iou")):
        ax.plot(epochs, [h[key] for h in history], marker="o", color="tab:green")
        ax.set_title(key.replace("_", " "))
        ax.set_ylim(0, 1)
    best = best_epoch_row(history, monitor)
    if best is not None:
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
    with atomic_output(p, what="curves") as tmp:
        fig.savefig(tmp, dpi=80)
    return p


def _overlay(image: np.ndarray, mask: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    out = image.astype(np.float32).copy()
    m = mask.astype(bool)
    out[m] = 0.55 * out[m] + 0.45 * np.asarray(color, np.float32)
    return out.clip(0, 255).astype(np.uint8)


def _to_rgb_u8(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    return img[..., :3]


def _fit_height(panel: np.ndarray, height: int, nearest: bool = False) -> np.ndarray:
    h, w = panel.shape[:2]
    if h == height:
        return panel
    width = max(1, round(w * height / h))
    if nearest:
        interp = cv2.INTER_NEAREST
    else:  # area averaging to shrink (no aliasing), linear to enlarge (area would look blocky)
        interp = cv2.INTER_AREA if height < h else cv2.INTER_LINEAR
    return cv2.resize(panel, (width, height), interpolation=interp)


def _outline(panel: np.ndarray, mask: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    """``panel`` with the outline of ``mask`` (same height, resized to it) drawn on top."""
    m = _fit_height(np.asarray(mask, np.uint8), panel.shape[0], nearest=True)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = np.ascontiguousarray(panel)
    cv2.drawContours(out, contours, -1, color, 1, cv2.LINE_AA)
    return out


def _text_width(text: str, scale: float = 0.5) -> int:
    """Pixels that ``_text_bar`` needs for ``text`` at ``scale``, margins included."""
    return cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] + 12


def _text_bar(text: str, width: int, height: int = _BAR) -> np.ndarray:
    """``text`` on a white bar, its font shrunk until the whole text fits the width (a narrow row of
    portrait images would otherwise cut off its end)."""
    bar = np.full((height, width, 3), 255, np.uint8)
    scale = 0.5
    while scale > 0.25 and _text_width(text, scale) > width:
        scale -= 0.025
    cv2.putText(bar, text, (6, height - 7), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return bar


def save_gallery(
    images: Sequence[np.ndarray],
    truths: Sequence[np.ndarray],
    preds: Sequence[np.ndarray],
    scores: Sequence[float],
    names: Sequence[str],
    path: str | Path,
    *,
    title: str = "worst cases",
    panel_height: int = 256,
) -> Path:
    """One row per case: image, ground truth (green), prediction (magenta, truth outlined) with its Dice.

    Drawn with OpenCV rather than matplotlib: a gallery is rendered at the end of every trial, and
    matplotlib's layout engine alone cost several percent of a short trial's wall time. Images of any
    size are scaled to ``panel_height`` (keeping their aspect ratio); rows are padded to one width.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    rows: list[np.ndarray] = []
    labels: list[str] = []
    for img, gt, pr, sc, name in zip(images, truths, preds, scores, names, strict=True):
        rgb = _to_rgb_u8(img)
        truth, pred = _overlay(rgb, np.asarray(gt), (0, 255, 0)), _overlay(rgb, np.asarray(pr), (255, 0, 255))
        panels = [_fit_height(x, panel_height) for x in (rgb, truth, pred)]
        # The truth's outline on the prediction: misses and false alarms show without looking back and forth.
        panels[2] = _outline(panels[2], gt, (0, 200, 0))
        row = np.concatenate(panels, axis=1)
        rows.append(row)
        labels.append(f"Dice {float(sc):.3f}  |  {name}  |  ground truth  |  prediction (truth outlined)")
    # As wide as the widest row and the longest label: a row of narrow (portrait) images keeps its label.
    width = max([r.shape[1] for r in rows] + [_text_width(t) for t in labels], default=3 * panel_height)
    rows = [
        np.concatenate([_text_bar(label, width), np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)),
                                                          constant_values=255)], axis=0)
        for label, r in zip(labels, rows, strict=True)
    ]  # fmt: skip
    if not rows:  # still write a picture, so that a link to it never dangles
        rows = [_text_bar("no cases", width, panel_height)]
    canvas = np.concatenate([_text_bar(title, width, _BAR + 6), *rows], axis=0)
    with atomic_output(p, what="gallery") as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR)):
            raise OSError(None, f"could not write the gallery image {p}")  # no errno: the folder tells why
    return p
