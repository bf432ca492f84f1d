"""Decode + resize a dataset once into ``.npy`` arrays, then memory-map them on every later run.

Layout: ``<cache_dir>/<key>/{images.npy, masks.npy, meta.json}`` where ``key`` hashes the resolution, the
ordered stems and the files' fingerprint (names, sizes, mtimes). Rewriting any file changes the key, so a
stale cache is never used. Entries are written to a temporary folder and renamed into place, so an
interrupted build leaves no half-written entry behind.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.lib.format import open_memmap

from hpsearch.data.discover import Pair, dataset_fingerprint
from hpsearch.data.io import default_cache_root, progress_bar, read_image, read_mask
from hpsearch.errors import DataError

CACHE_VERSION = 1  # bump when the decode/resize recipe changes so old entries are not reused
_THREADS = 2


@dataclass(frozen=True)
class CachedArrays:
    """Memory-mapped arrays for ``stems`` (in that order) and each file's original (H, W)."""

    images: np.ndarray  # (N, S, S, 3) uint8 RGB
    masks: np.ndarray  # (N, S, S) uint8 {0, 1}
    stems: tuple[str, ...]
    original_sizes: tuple[tuple[int, int], ...]  # (H, W) before resizing, for full-resolution evaluation
    path: Path | None


def default_cache_dir() -> Path:
    """Where arrays go by default: ``$HPSEARCH_CACHE/arrays`` or ``~/.cache/hpsearch/arrays``."""
    return default_cache_root() / "arrays"


def resize_pair(image: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Resize an RGB image and a {0, 1} mask to (size, size) exactly as the cache does.

    Images use INTER_AREA (proper averaging when shrinking, no aliasing). The mask is resized as 0/255 with
    INTER_AREA too and thresholded at 128: each output pixel becomes foreground when at least half of the
    area it covers is foreground. That keeps it aligned with the averaged image pixels and keeps thin
    structures more faithfully than nearest-neighbour sampling, which picks one arbitrary source pixel.
    """
    dsize = (size, size)
    image_out = cv2.resize(image, dsize, interpolation=cv2.INTER_AREA)
    mask_out = cv2.resize(mask.astype(np.uint8) * 255, dsize, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image_out), (mask_out >= 128).astype(np.uint8)


def _as_mapping(pairs_by_stem: Mapping[str, Pair] | Iterable[Pair]) -> Mapping[str, Pair]:
    if isinstance(pairs_by_stem, Mapping):
        return pairs_by_stem
    return {p.stem: p for p in pairs_by_stem}


def cache_key(pairs: Sequence[Pair], size: int) -> tuple[str, str]:
    """(key, fingerprint) for these pairs in this order at this resolution."""
    fingerprint = dataset_fingerprint(pairs)
    stems = [p.stem for p in pairs]
    payload = json.dumps(
        {"version": CACHE_VERSION, "size": size, "stems": stems, "fingerprint": fingerprint},
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest(), fingerprint


def _open_entry(entry: Path, key: str, n: int, size: int) -> CachedArrays | None:
    """The cached arrays in ``entry``, or None when it is missing or does not match."""
    try:
        meta = json.loads((entry / "meta.json").read_text())
        if meta.get("key") != key:
            return None
        images = np.load(entry / "images.npy", mmap_mode="r")
        masks = np.load(entry / "masks.npy", mmap_mode="r")
    except (OSError, ValueError):
        return None
    if images.shape != (n, size, size, 3) or masks.shape != (n, size, size):
        return None
    sizes = tuple((int(h), int(w)) for h, w in meta["original_sizes"])
    return CachedArrays(images, masks, tuple(meta["stems"]), sizes, entry)


def _build(entry: Path, pairs: Sequence[Pair], size: int, key: str, fingerprint: str, progress: bool) -> None:
    """Decode and resize ``pairs`` into ``entry`` (written in a temp folder, then renamed)."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=entry.parent, prefix=f".tmp-{key[:16]}-"))
    try:
        n = len(pairs)
        # open_memmap writes straight to disk, so a large dataset never has to fit in memory at once.
        out = {
            "images": open_memmap(tmp / "images.npy", mode="w+", dtype=np.uint8, shape=(n, size, size, 3)),
            "masks": open_memmap(tmp / "masks.npy", mode="w+", dtype=np.uint8, shape=(n, size, size)),
        }
        original: list[tuple[int, int]] = [(0, 0)] * n

        def work(i: int) -> None:
            pair = pairs[i]
            image, mask = read_image(pair.image), read_mask(pair.mask)
            if image.shape[:2] != mask.shape:
                raise DataError(
                    f"{pair.mask}: mask is {mask.shape[1]}x{mask.shape[0]} but its image {pair.image.name} "
                    f"is {image.shape[1]}x{image.shape[0]}; run `hpsearch data check` on the data folder"
                )
            out["images"][i], out["masks"][i] = resize_pair(image, mask, size)
            original[i] = (int(image.shape[0]), int(image.shape[1]))

        with progress_bar(progress) as bar, ThreadPoolExecutor(_THREADS) as pool:
            task = bar.add_task(f"caching {n} pairs at {size}x{size}", total=n)
            for _ in pool.map(work, range(n)):
                bar.advance(task)
        for arr in out.values():
            arr.flush()
        out.clear()  # close the maps before the rename (required on Windows)
        meta = {
            "version": CACHE_VERSION,
            "key": key,
            "size": size,
            "fingerprint": fingerprint,
            "data_dir": str(pairs[0].image.parent.parent.resolve()),
            "stems": [p.stem for p in pairs],
            "original_sizes": [list(hw) for hw in original],
        }
        # meta.json is written last: an entry without it is never trusted.
        (tmp / "meta.json").write_text(json.dumps(meta))
        try:
            tmp.rename(entry)
        except OSError:
            # Another process finished the same entry first (or a broken one is in the way): keep a valid
            # existing entry, otherwise replace the broken one.
            if _open_entry(entry, key, n, size) is None:
                shutil.rmtree(entry, ignore_errors=True)
                tmp.rename(entry)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def load_cached(
    pairs_by_stem: Mapping[str, Pair] | Iterable[Pair],
    stems: Sequence[str],
    *,
    size: int,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> CachedArrays:
    """Arrays for ``stems`` at ``size`` x ``size``: built on the first call, memory-mapped afterwards."""
    if not isinstance(size, int) or size < 8:
        raise DataError(f"cache size is {size!r}; expected an integer resolution of at least 8, e.g. 256")
    mapping = _as_mapping(pairs_by_stem)
    missing = [s for s in stems if s not in mapping]
    if missing:
        raise DataError(
            f"{len(missing)} stem(s) are not in the dataset: {', '.join(missing[:5])}; "
            "the split does not belong to this data folder"
        )
    if not stems:
        empty_images = np.zeros((0, size, size, 3), np.uint8)
        return CachedArrays(empty_images, np.zeros((0, size, size), np.uint8), (), (), None)
    pairs = [mapping[s] for s in stems]
    key, fingerprint = cache_key(pairs, size)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    entry = root / key
    cached = _open_entry(entry, key, len(pairs), size)
    if cached is None:
        if entry.exists():
            shutil.rmtree(entry, ignore_errors=True)  # damaged entry (e.g. disk filled up mid-copy)
        try:
            _build(entry, pairs, size, key, fingerprint, progress)
        except OSError as exc:
            raise DataError(
                f"cannot write the array cache in {root} ({exc.strerror or exc}); free disk space or set "
                "HPSEARCH_CACHE to a writable folder"
            ) from None
        cached = _open_entry(entry, key, len(pairs), size)
        if cached is None:
            raise DataError(f"array cache {entry} could not be read back after building; delete it and retry")
    return cached


def load_arrays(
    pairs_by_stem: Mapping[str, Pair] | Iterable[Pair],
    stems: Sequence[str],
    *,
    size: int,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, S, S, 3) uint8, masks (N, S, S) uint8 {0, 1}) for ``stems`` in order, memory-mapped."""
    cached = load_cached(pairs_by_stem, stems, size=size, cache_dir=cache_dir, progress=progress)
    return cached.images, cached.masks
