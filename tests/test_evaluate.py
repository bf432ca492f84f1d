"""Evaluation at each mask's original resolution, on non-square images of several sizes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from hpsearch.data.check import verify_dataset
from hpsearch.data.io import read_mask
from hpsearch.data.synth import make_synthetic
from hpsearch.models import create_model
from hpsearch.training.checkpoint import save_checkpoint
from hpsearch.training.config import DataConfig, RunConfig, TrainConfig
from hpsearch.training.evaluate import evaluate_checkpoint
from hpsearch.training.session import train_from_config

# (height, width) of each image, cycled: wide, tall and square, none equal to the training size.
SIZES = [(40, 72), (88, 48), (56, 56), (36, 100)]
TRAIN_SIZE = 32
TINY = {"base_width": 4, "depth": 2}


@pytest.fixture(scope="module")
def mixed_sizes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 synthetic pairs, each resized (image: area, mask: nearest) to one of ``SIZES``."""
    data = make_synthetic(tmp_path_factory.mktemp("mixed") / "d", n=12, size=64, seed=5)
    for i, pair in enumerate(verify_dataset(data)):
        h, w = SIZES[i % len(SIZES)]
        image = cv2.imread(str(pair.image), cv2.IMREAD_COLOR)
        mask = cv2.imread(str(pair.mask), cv2.IMREAD_GRAYSCALE)
        cv2.imwrite(str(pair.image), cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA))
        cv2.imwrite(str(pair.mask), cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST))
    return data


def _cfg(**data: object) -> RunConfig:
    return RunConfig(
        data=DataConfig(
            image_size=TRAIN_SIZE, augmentation="none", val_fraction=0.25, test_fraction=0.25, **data
        ),
        model={"name": "unet", "kwargs": TINY},
        train=TrainConfig(epochs=1, batch_size=4, device="cpu", gallery_k=0),
    )


def _per_case(out: Path) -> dict[str, dict[str, str]]:
    with (out / "per_case.csv").open() as fh:
        return {row["stem"]: row for row in csv.DictReader(fh)}


def test_a_trained_checkpoint_is_scored_at_each_original_size(mixed_sizes: Path, tmp_path: Path) -> None:
    cfg = _cfg()
    run = train_from_config(cfg, data_dir=mixed_sizes, out_dir=tmp_path / "run", progress=False)
    assert run.result.checkpoint_path is not None
    m = evaluate_checkpoint(run.result.checkpoint_path, mixed_sizes, out_dir=tmp_path / "eval", device="cpu")
    cases = _per_case(tmp_path / "eval")
    masks = {p.stem: read_mask(p.mask) for p in verify_dataset(mixed_sizes)}
    assert m["n"] == len(cases) == 3  # a quarter of 12 is the sealed test part
    for stem, row in cases.items():
        assert (int(row["height"]), int(row["width"])) == masks[stem].shape, stem
        assert float(row["gt_fraction"]) == pytest.approx(masks[stem].mean(), abs=1e-6)
    # The sealed part mixes sizes, none of them the training size: a resize back would be caught.
    assert len({masks[s].shape for s in cases}) >= 2 and (TRAIN_SIZE, TRAIN_SIZE) not in {
        masks[s].shape for s in cases
    }


def _all_foreground_checkpoint(path: Path, cfg: RunConfig) -> Path:
    """A real U-Net whose 1x1 head is zeroed with bias +1: the logit is 1 at every pixel of any image."""
    model = create_model("unet", **TINY)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.fill_(1.0)
    extra = {"model_name": "unet", "model_kwargs": TINY, "config": cfg.model_dump(mode="json")}
    return save_checkpoint(path, state_dict=model.state_dict(), epoch=1, metrics={}, extra=extra)


def test_a_known_prediction_scores_the_known_dice_at_the_original_size(
    mixed_sizes: Path, tmp_path: Path
) -> None:
    cfg = _cfg()
    ckpt = _all_foreground_checkpoint(tmp_path / "ones.pt", cfg)
    m = evaluate_checkpoint(ckpt, mixed_sizes, out_dir=tmp_path / "eval", split="all", device="cpu", k=0)
    cases = _per_case(tmp_path / "eval")
    masks = {p.stem: read_mask(p.mask) for p in verify_dataset(mixed_sizes)}
    assert sorted(cases) == sorted(masks)
    # Predicting every pixel: Dice = 2|G| / (|G| + H*W) and IoU = |G| / (H*W), counted at the mask's own size.
    for stem, row in cases.items():
        g, hw = int(masks[stem].sum()), masks[stem].size
        assert (int(row["height"]), int(row["width"])) == masks[stem].shape
        assert float(row["dice"]) == pytest.approx(2 * g / (g + hw), abs=1e-6), stem
        assert float(row["iou"]) == pytest.approx(g / hw, abs=1e-6), stem
        assert float(row["pred_fraction"]) == 1.0
    g_all = sum(int(x.sum()) for x in masks.values())
    hw_all = sum(x.size for x in masks.values())
    assert m["micro_dice"] == pytest.approx(2 * g_all / (g_all + hw_all), rel=1e-6)
    expected_mean = np.mean([2 * x.sum() / (x.sum() + x.size) for x in masks.values()])
    assert m["dice_mean"] == pytest.approx(expected_mean, rel=1e-6)
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["n"] == len(masks)
