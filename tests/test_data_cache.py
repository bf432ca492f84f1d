"""The decoded-array cache: exact contents, reuse without rebuilding, invalidation, atomic writes."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import hpsearch.data.cache as cache_mod
from hpsearch.data.cache import default_cache_dir, load_arrays, load_cached, resize_pair
from hpsearch.data.discover import discover_pairs
from hpsearch.data.io import read_image, read_mask
from hpsearch.errors import DataError


@pytest.fixture
def data_copy(synth_data: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(synth_data, tmp_path / "data"))


def _count_builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = cache_mod._build

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(cache_mod, "_build", counting)
    return calls


def test_cache_is_pixel_exact(synth_data: Path, tmp_path: Path) -> None:
    pairs = discover_pairs(synth_data)
    by_stem = {p.stem: p for p in pairs}
    stems = [p.stem for p in pairs][::-1][:10]  # arbitrary order is kept
    images, masks = load_arrays(by_stem, stems, size=32, cache_dir=tmp_path / "c", progress=False)
    assert images.shape == (10, 32, 32, 3) and images.dtype == np.uint8
    assert masks.shape == (10, 32, 32) and masks.dtype == np.uint8
    assert set(np.unique(masks).tolist()) <= {0, 1}
    for i, stem in enumerate(stems):
        image = cv2.resize(read_image(by_stem[stem].image), (32, 32), interpolation=cv2.INTER_AREA)
        mask = cv2.resize(read_mask(by_stem[stem].mask) * 255, (32, 32), interpolation=cv2.INTER_AREA) >= 128
        np.testing.assert_array_equal(images[i], image)
        np.testing.assert_array_equal(masks[i], mask.astype(np.uint8))


def test_meta_records_original_sizes_and_stems(data_copy: Path, tmp_path: Path) -> None:
    # Make one pair a different size so the recorded original sizes are not all the same.
    pairs = discover_pairs(data_copy)
    p = pairs[0]
    cv2.imwrite(str(p.image), cv2.resize(cv2.imread(str(p.image)), (80, 48)))
    cv2.imwrite(str(p.mask), cv2.resize(cv2.imread(str(p.mask), cv2.IMREAD_GRAYSCALE), (80, 48)))
    stems = [q.stem for q in pairs[:3]]
    cached = load_cached(pairs, stems, size=16, cache_dir=tmp_path / "c", progress=False)
    assert cached.stems == tuple(stems)
    assert cached.original_sizes == ((48, 80), (64, 64), (64, 64))
    meta = json.loads((cached.path / "meta.json").read_text())
    assert meta["size"] == 16 and meta["stems"] == stems and meta["original_sizes"][0] == [48, 80]


def test_second_load_is_a_fast_memmap_without_rebuild(
    synth_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pairs = discover_pairs(synth_data)
    stems = [p.stem for p in pairs]
    first = load_cached(pairs, stems, size=32, cache_dir=tmp_path / "c", progress=False)
    meta_before = (first.path / "meta.json").stat().st_mtime_ns

    def no_build(*args, **kwargs):
        raise AssertionError("cache was rebuilt")

    monkeypatch.setattr(cache_mod, "_build", no_build)
    t0 = time.perf_counter()
    images, masks = load_arrays(pairs, stems, size=32, cache_dir=tmp_path / "c", progress=False)
    assert time.perf_counter() - t0 < 0.5
    assert isinstance(images, np.memmap) and isinstance(masks, np.memmap)
    assert not images.flags.writeable
    np.testing.assert_array_equal(images, first.images)
    assert (first.path / "meta.json").stat().st_mtime_ns == meta_before
    assert [d.name for d in (tmp_path / "c").iterdir()] == [first.path.name]


def test_touching_or_rewriting_a_file_rebuilds(
    data_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds = _count_builds(monkeypatch)
    pairs = discover_pairs(data_copy)
    stems = [p.stem for p in pairs[:4]]
    cache = tmp_path / "c"
    first = load_cached(pairs, stems, size=16, cache_dir=cache, progress=False)
    load_cached(pairs, stems, size=16, cache_dir=cache, progress=False)
    assert len(builds) == 1

    st = pairs[1].image.stat()
    os.utime(pairs[1].image, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    second = load_cached(pairs, stems, size=16, cache_dir=cache, progress=False)
    assert len(builds) == 2 and second.path != first.path

    cv2.imwrite(str(pairs[2].image), np.zeros((64, 64, 3), np.uint8))  # new content
    third = load_cached(pairs, stems, size=16, cache_dir=cache, progress=False)
    assert len(builds) == 3
    assert int(third.images[2].max()) == 0 and int(second.images[2].max()) > 0

    load_cached(pairs, stems, size=24, cache_dir=cache, progress=False)  # another resolution
    assert len(builds) == 4


def test_failed_build_leaves_nothing_behind(data_copy: Path, tmp_path: Path) -> None:
    pairs = discover_pairs(data_copy)
    pairs[5].mask.write_bytes(b"broken")
    cache = tmp_path / "c"
    with pytest.raises(DataError, match="synth_0005.png"):
        load_arrays(pairs, [p.stem for p in pairs], size=16, cache_dir=cache, progress=False)
    assert list(cache.iterdir()) == []


def test_damaged_entry_is_rebuilt(synth_data: Path, tmp_path: Path) -> None:
    pairs = discover_pairs(synth_data)
    stems = [p.stem for p in pairs[:3]]
    first = load_cached(pairs, stems, size=16, cache_dir=tmp_path / "c", progress=False)
    expected = np.array(first.images)
    (first.path / "images.npy").write_bytes(b"truncated")
    again = load_cached(pairs, stems, size=16, cache_dir=tmp_path / "c", progress=False)
    np.testing.assert_array_equal(again.images, expected)


def test_unknown_stem_and_empty_stem_list(synth_data: Path, tmp_path: Path) -> None:
    pairs = discover_pairs(synth_data)
    with pytest.raises(DataError, match="not in the dataset: nope"):
        load_arrays(pairs, ["nope"], size=16, cache_dir=tmp_path / "c")
    images, masks = load_arrays(pairs, [], size=16, cache_dir=tmp_path / "c")
    assert images.shape == (0, 16, 16, 3) and masks.shape == (0, 16, 16)


def test_default_cache_dir_follows_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPSEARCH_CACHE", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x" / "arrays"
    monkeypatch.delenv("HPSEARCH_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "hpsearch" / "arrays"


def test_mask_resize_keeps_majority_area() -> None:
    mask = np.zeros((8, 8), np.uint8)
    mask[0:2, 0:2] = 1  # a full 2x2 block -> one output pixel
    mask[4, 4] = 1  # one quarter of a block: too little to count
    mask[6:8, 6] = 1  # half a block: counts (>= 128 after averaging 0/255)
    _, small = resize_pair(np.zeros((8, 8, 3), np.uint8), mask, 4)
    expected = np.zeros((4, 4), np.uint8)
    expected[0, 0] = 1
    expected[3, 3] = 1
    np.testing.assert_array_equal(small, expected)
