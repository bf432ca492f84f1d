"""Pictures: the worst-case gallery and the training curves are real, readable PNGs with the right content."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from hpsearch.training.viz import plot_curves, save_gallery


def _read_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, f"{path} is not a readable image"
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def test_gallery_has_one_row_per_case_and_marks_truth_and_prediction(tmp_path: Path) -> None:
    # Two cases of different sizes (original-resolution evaluation mixes them), grey images.
    images = [np.full((100, 200, 3), 128, np.uint8), np.full((300, 150, 3), 128, np.uint8)]
    truths = [np.zeros((100, 200), bool), np.zeros((300, 150), bool)]
    preds = [np.zeros((100, 200), bool), np.zeros((300, 150), bool)]
    truths[0][:, :100] = True  # left half of case 0 is polyp
    preds[0][:, 100:] = True  # the prediction put it on the right half
    out = save_gallery(images, truths, preds, [0.0, 1.0], ["case_a", "case_b"], tmp_path / "g" / "w.png",
                       panel_height=64)
    img = _read_rgb(out)
    # Title bar + 2 x (caption bar + 64-pixel panel row).
    assert img.shape[0] == 30 + 2 * (24 + 64)
    # Case 0 scaled to 64 high is 128 wide: panels at x 0..127, 128..255, 256..383.
    row0 = img[30 + 24 : 30 + 24 + 64]
    truth_left, truth_right = row0[32, 128 + 10], row0[32, 128 + 118]
    pred_left, pred_right = row0[32, 256 + 10], row0[32, 256 + 118]
    assert truth_left[1] > truth_left[0] + 40  # green tint where the truth is
    assert abs(int(truth_right[0]) - 128) < 3 and abs(int(truth_right[1]) - 128) < 3  # untouched grey
    assert pred_right[0] > pred_right[1] + 40 and pred_right[2] > pred_right[1] + 40  # magenta tint
    assert abs(int(pred_left[1]) - 128) < 3
    # The first panel is the plain image.
    assert np.abs(row0[:, :128].astype(int) - 128).max() <= 2
    # Rows are padded to one width: the narrower case (64 x 32 panels) leaves white padding on its right.
    row1 = img[30 + 24 + 64 + 24 :]
    assert (row1[:, 3 * 32 + 5 :] == 255).all()


def test_gallery_with_no_cases_still_writes_a_picture(tmp_path: Path) -> None:
    out = save_gallery([], [], [], [], [], tmp_path / "empty.png")
    assert _read_rgb(out).shape[0] > 0


def test_gallery_rejects_mismatched_inputs(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        save_gallery([np.zeros((8, 8, 3), np.uint8)], [], [], [], [], tmp_path / "bad.png")


def test_curves_png_is_written(tmp_path: Path) -> None:
    history = [
        {"epoch": e, "train_loss": 1 / e, "val_loss": 1.1 / e, "val_dice": 1 - 1 / (e + 1), "val_iou": 0.5}
        for e in range(1, 6)
    ]
    out = plot_curves(history, tmp_path / "c" / "curves.png", title="unet")
    img = _read_rgb(out)
    assert img.shape[1] > img.shape[0] > 100
    # Something was drawn: not a blank canvas.
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 10


def test_a_narrow_row_keeps_its_whole_label(tmp_path: Path) -> None:
    """A portrait image (narrow row) with an empty prediction: the label, Dice first, is drawn whole."""
    image = np.full((400, 150, 3), 128, np.uint8)
    truth = np.zeros((400, 150), np.uint8)
    truth[100:200, 50:100] = 1
    out = save_gallery([image], [truth], [np.zeros_like(truth)], [0.0], ["cju0qkwl35piu0993l0dewei2"],
                       tmp_path / "g.png", panel_height=128)  # fmt: skip
    canvas = cv2.imread(str(out))
    row_width = 3 * round(150 * 128 / 400)
    assert canvas.shape[1] > row_width  # widened for the label, not the label cut to the row
    label_bar = canvas[30:54]  # below the title bar
    ink = np.flatnonzero((label_bar < 128).any(axis=(0, 2)))
    assert ink.size and ink.max() < canvas.shape[1] - 4
