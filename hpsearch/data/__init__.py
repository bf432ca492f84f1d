"""Data layer: reading, discovering, checking, splitting, caching, augmenting and synthesising datasets.

The torch/albumentations parts (``augment``, ``dataset``) are imported lazily so that ``hpsearch data``
commands start quickly.
"""

from __future__ import annotations

import importlib
from typing import Any

from hpsearch.data.cache import CachedArrays, load_arrays, load_cached, resize_pair
from hpsearch.data.check import CheckReport, check_dataset, verify_dataset
from hpsearch.data.discover import Pair, dataset_fingerprint, discover_pairs
from hpsearch.data.download import KVASIR_SHA256, KVASIR_URL, download_dataset
from hpsearch.data.io import IMAGE_EXTENSIONS, read_image, read_mask
from hpsearch.data.splits import Split, load_split, make_split, save_split
from hpsearch.data.synth import make_synthetic

_LAZY = {
    "PRESETS": "hpsearch.data.augment",
    "build_transform": "hpsearch.data.augment",
    "SegmentationArrays": "hpsearch.data.dataset",
    "MEAN": "hpsearch.data.dataset",
    "STD": "hpsearch.data.dataset",
    "normalize": "hpsearch.data.dataset",
}

__all__ = [
    "IMAGE_EXTENSIONS",
    "KVASIR_SHA256",
    "KVASIR_URL",
    "CachedArrays",
    "CheckReport",
    "Pair",
    "Split",
    "check_dataset",
    "dataset_fingerprint",
    "discover_pairs",
    "download_dataset",
    "load_arrays",
    "load_cached",
    "load_split",
    "make_split",
    "make_synthetic",
    "read_image",
    "read_mask",
    "resize_pair",
    "save_split",
    "verify_dataset",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hpsearch.data' has no attribute '{name}'")
