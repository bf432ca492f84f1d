"""Augmentation presets and the SegmentationArrays dataset."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from hpsearch.data.augment import PRESETS, build_transform
from hpsearch.data.cache import load_arrays
from hpsearch.data.dataset import MEAN, STD, SegmentationArrays, normalize
from hpsearch.data.discover import discover_pairs
from hpsearch.errors import ConfigError

SIZE = 64


def _sample(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[10:40, 20:50] = 1
    mask[rng.random((SIZE, SIZE)) < 0.05] = 1  # isolated pixels: interpolation would smear them
    return image, mask


def test_preset_names_and_unknown_name() -> None:
    assert PRESETS.names() == ["advanced", "basic", "none"]
    with pytest.raises(
        ConfigError, match="unknown augmentation preset 'fancy'; expected one of: advanced, basic, none"
    ):
        build_transform("fancy", SIZE)


def test_none_is_identity() -> None:
    image, mask = _sample()
    out = build_transform("none", SIZE)(image=image, mask=mask)
    np.testing.assert_array_equal(out["image"], image)
    np.testing.assert_array_equal(out["mask"], mask)


@pytest.mark.parametrize("name", ["basic", "advanced"])
def test_presets_keep_shape_dtype_and_binary_masks(name: str) -> None:
    transform = build_transform(name, SIZE)
    transform.set_random_seed(0)
    image, mask = _sample()
    changed = 0
    for _ in range(40):
        out = transform(image=image, mask=mask)
        assert out["image"].shape == (SIZE, SIZE, 3) and out["image"].dtype == np.uint8
        assert out["mask"].shape == (SIZE, SIZE) and out["mask"].dtype == np.uint8
        assert set(np.unique(out["mask"]).tolist()) <= {0, 1}
        changed += int(not np.array_equal(out["mask"], mask))
    assert changed >= 20  # it really augments


def test_basic_moves_image_and_mask_together() -> None:
    """With the mask painted into the image, the warped image must still show the warped mask."""
    _, mask = _sample()
    image = np.repeat(mask[..., None] * 255, 3, axis=2).astype(np.uint8)
    transform = build_transform("basic", SIZE)
    transform.set_random_seed(1)
    for _ in range(30):
        out = transform(image=image, mask=mask)
        agree = ((out["image"][..., 0] >= 128) == (out["mask"] == 1)).mean()
        assert agree > 0.95


def test_advanced_includes_the_phase_two_transforms() -> None:
    names = {type(t).__name__ for t in build_transform("advanced", SIZE).transforms}
    assert {
        "RandomResizedCrop",
        "ElasticTransform",
        "CLAHE",
        "ColorJitter",
        "RandomBrightnessContrast",
    } <= names
    assert {"HorizontalFlip", "VerticalFlip", "RandomRotate90", "Affine"} <= names


def test_seeded_transform_is_reproducible() -> None:
    image, mask = _sample()
    a, b = build_transform("advanced", SIZE), build_transform("advanced", SIZE)
    a.set_random_seed(7)
    b.set_random_seed(7)
    for _ in range(5):
        np.testing.assert_array_equal(a(image=image, mask=mask)["image"], b(image=image, mask=mask)["image"])


# --------------------------------------------------------------------------- dataset


def test_normalize_constants() -> None:
    image = np.zeros((2, 2, 3), np.uint8)
    image[0, 0] = 255
    out = normalize(image)
    assert out.shape == (3, 2, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, 1, 1], [-m / s for m, s in zip(MEAN, STD, strict=True)], rtol=1e-6)
    np.testing.assert_allclose(out[:, 0, 0], [(1 - m) / s for m, s in zip(MEAN, STD, strict=True)], rtol=1e-6)


def test_dataset_items(synth_data: Path, tmp_path: Path) -> None:
    pairs = discover_pairs(synth_data)
    images, masks = load_arrays(
        pairs, [p.stem for p in pairs], size=32, cache_dir=tmp_path / "c", progress=False
    )
    ds = SegmentationArrays(images, masks)
    assert len(ds) == 24
    x, y = ds[3]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert y.shape == (1, 32, 32) and y.dtype == torch.float32
    torch.testing.assert_close(x, torch.from_numpy(normalize(np.asarray(images[3]))))
    assert torch.equal(y[0], torch.from_numpy(masks[3].astype(np.float32)))

    augmented = SegmentationArrays(images, masks, transform=build_transform("advanced", 32))
    for i in range(len(augmented)):
        _, y = augmented[i]
        assert set(torch.unique(y).tolist()) <= {0.0, 1.0}
    batch_x, batch_y = next(iter(DataLoader(augmented, batch_size=8)))
    assert batch_x.shape == (8, 3, 32, 32) and batch_y.shape == (8, 1, 32, 32)


def test_dataset_pickles_memmaps_by_reference(synth_data: Path, tmp_path: Path) -> None:
    pairs = discover_pairs(synth_data)
    images, masks = load_arrays(
        pairs, [p.stem for p in pairs], size=32, cache_dir=tmp_path / "c", progress=False
    )
    blob = pickle.dumps(SegmentationArrays(images, masks))
    assert len(blob) < 2000  # file names, not a copy of the pixels (images alone are 73,728 bytes)
    clone = pickle.loads(
        pickle.dumps(SegmentationArrays(images, masks, transform=build_transform("basic", 32)))
    )
    assert isinstance(clone.images, np.memmap) and isinstance(clone.masks, np.memmap)
    np.testing.assert_array_equal(clone.images, images)
    assert clone[0][0].shape == (3, 32, 32)
    plain = SegmentationArrays(np.array(images), np.array(masks))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(plain)).masks, masks)


def test_dataset_rejects_bad_shapes() -> None:
    from hpsearch.errors import DataError

    with pytest.raises(DataError, match="expected \\(N, S, S, 3\\) uint8"):
        SegmentationArrays(np.zeros((2, 8, 8), np.uint8), np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(DataError, match="to match images"):
        SegmentationArrays(np.zeros((2, 8, 8, 3), np.uint8), np.zeros((2, 8, 9), np.uint8))


def test_manual_seed_makes_augmentation_reproducible() -> None:
    image, mask = _sample()
    images, masks = np.stack([image] * 6), np.stack([mask] * 6)

    def run(seed: int) -> list[torch.Tensor]:
        torch.manual_seed(seed)
        ds = SegmentationArrays(images, masks, transform=build_transform("advanced", SIZE))
        return [ds[i][0] for i in range(6)]

    a, b, c = run(3), run(3), run(4)
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    assert not all(torch.equal(u, v) for u, v in zip(a, c, strict=True))


def test_loader_workers_draw_different_augmentations() -> None:
    image, mask = _sample()
    n = 8
    ds = SegmentationArrays(
        np.stack([image] * n), np.stack([mask] * n), transform=build_transform("basic", SIZE)
    )
    loader = DataLoader(ds, batch_size=1, num_workers=2, shuffle=False)
    masks = [y[0, 0] for _, y in loader]
    # Worker 0 serves items 0, 2, 4, 6 and worker 1 serves 1, 3, 5, 7. With a shared RNG state both workers
    # would produce the same sequence, so every (0, 1), (2, 3), ... pair would be equal.
    same = [torch.equal(masks[i], masks[i + 1]) for i in range(0, n, 2)]
    assert not all(same)
