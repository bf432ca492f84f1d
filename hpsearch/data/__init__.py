"""Data: pair images and masks by stem, verify them, split them (``split_for``, the one way), decode and cache
arrays, augment, download Kvasir-SEG and make synthetic sets; raises ``DataError`` on bad data."""

from __future__ import annotations

from hpsearch._lazy import lazy_exports
from hpsearch.data.cache import CachedArrays, load_arrays, load_cached, resize_pair
from hpsearch.data.check import CheckReport, check_dataset, verify_dataset
from hpsearch.data.discover import Pair, dataset_fingerprint, discover_pairs
from hpsearch.data.download import KVASIR_SHA256, KVASIR_URL, download_dataset
from hpsearch.data.io import IMAGE_EXTENSIONS, read_image, read_mask
from hpsearch.data.splits import Split, load_split, make_split, resolve_split_file, save_split, split_for
from hpsearch.data.synth import make_synthetic

# The torch/albumentations parts load on first use so that `hpsearch data` commands start quickly.
_LAZY = {
    "PRESETS": "hpsearch.data.augment",
    "build_transform": "hpsearch.data.augment",
    "SegmentationArrays": "hpsearch.data.dataset",
    "MEAN": "hpsearch.data.dataset",
    "STD": "hpsearch.data.dataset",
    "normalize": "hpsearch.data.dataset",
    "DeviceBatches": "hpsearch.data.device_augment",
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
    "resolve_split_file",
    "save_split",
    "split_for",
    "verify_dataset",
    *_LAZY,
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
