"""Training never sees a test image: the pixels handed to ``fit`` are checked against the sealed test part.

The check compares decoded pixels (not stems), so it would also catch a test image that reached training
under another name or through a cache keyed on the wrong split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import hpsearch.training.session as runner
from hpsearch.data.cache import resize_pair
from hpsearch.data.check import verify_dataset
from hpsearch.data.io import read_image
from hpsearch.data.synth import make_synthetic
from hpsearch.training.config import DataConfig, RunConfig, TrainConfig

SIZE = 32
TEST_STEMS = ["synth_0002", "synth_0007", "synth_0011", "synth_0016", "synth_0020"]
VAL_STEMS = ["synth_0001", "synth_0005", "synth_0013", "synth_0018"]


@pytest.fixture(scope="module")
def split_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """24 synthetic pairs and a split folder (train.txt / val.txt / test.txt) naming the test part."""
    root = tmp_path_factory.mktemp("leak")
    data = make_synthetic(root / "data", n=24, size=48, seed=3)
    stems = [p.stem for p in verify_dataset(data)]
    train = [s for s in stems if s not in TEST_STEMS and s not in VAL_STEMS]
    folder = root / "split"
    folder.mkdir()
    for name, part in (("train", train), ("val", VAL_STEMS), ("test", TEST_STEMS)):
        (folder / f"{name}.txt").write_text("\n".join(part) + "\n")
    return data, folder


def _pixels(data_dir: Path, stems: list[str]) -> dict[bytes, str]:
    """Each stem's image decoded and resized as training decodes it, keyed by its bytes."""
    by_stem = {p.stem: p for p in verify_dataset(data_dir)}
    return {
        resize_pair(read_image(by_stem[s].image), np.zeros((1, 1), np.uint8), SIZE)[0].tobytes(): s
        for s in stems
    }


def _leaked(fed: np.ndarray, sealed: dict[bytes, str]) -> list[str]:
    """The sealed stems whose pixels appear among the ``fed`` images (N, H, W, 3)."""
    return sorted(sealed[a.tobytes()] for a in fed if a.tobytes() in sealed)


def _images_of(loader: Any) -> np.ndarray:
    """The uint8 arrays a loader draws its batches from (host DataLoader or on-device batches)."""
    if hasattr(loader, "dataset"):
        return np.asarray(loader.dataset.images)
    return loader.images.cpu().numpy()


class _Handed(Exception):
    """Raised by the stand-in for ``fit`` once it has recorded what it was given."""


@pytest.mark.parametrize("augment_on", ["cpu", "device"])
def test_fit_is_handed_no_test_pixels(
    split_data: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, augment_on: str
) -> None:
    data_dir, split_folder = split_data
    cfg = RunConfig(
        data=DataConfig(
            image_size=SIZE, augmentation="none", split_file=str(split_folder), augment_on=augment_on
        ),
        model={"name": "unet", "kwargs": {"base_width": 4, "depth": 2}},
        train=TrainConfig(epochs=1, batch_size=4, device="cpu", gallery_k=0),
    )
    handed: dict[str, np.ndarray] = {}

    def record(model: Any, train_loader: Any, val_loader: Any, **kwargs: Any) -> None:
        handed["train"], handed["val"] = _images_of(train_loader), _images_of(val_loader)
        raise _Handed

    monkeypatch.setattr(runner, "fit", record)
    with pytest.raises(_Handed):
        runner.train_from_config(cfg, data_dir=data_dir, out_dir=tmp_path, progress=False)

    sealed = _pixels(data_dir, TEST_STEMS)
    assert len(sealed) == len(TEST_STEMS)  # distinct pixels, so a leak cannot hide behind a twin
    assert _leaked(handed["train"], sealed) == [] and _leaked(handed["val"], sealed) == []
    # What fit got is exactly the listed train and val images, nothing more and nothing less.
    all_stems = [p.stem for p in verify_dataset(data_dir)]
    train_stems = [s for s in all_stems if s not in TEST_STEMS + VAL_STEMS]
    assert sorted(_leaked(handed["train"], _pixels(data_dir, all_stems))) == train_stems
    assert sorted(_leaked(handed["val"], _pixels(data_dir, all_stems))) == VAL_STEMS


def test_the_leak_check_catches_test_pixels_in_training(split_data: tuple[Path, Path]) -> None:
    """The same check, fed a training set that holds every stem, names each test stem."""
    data_dir, _ = split_data
    all_stems = [p.stem for p in verify_dataset(data_dir)]
    everything = np.stack(
        [np.frombuffer(b, np.uint8).reshape(SIZE, SIZE, 3) for b in _pixels(data_dir, all_stems)]
    )
    assert _leaked(everything, _pixels(data_dir, TEST_STEMS)) == TEST_STEMS
