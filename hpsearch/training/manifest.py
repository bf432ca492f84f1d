"""Seeding and the reproducibility manifest stored with every checkpoint and trial."""

from __future__ import annotations

import functools
import os
import platform
import random
import sys
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import numpy as np
import torch

from hpsearch._version import __version__
from hpsearch.training.device import cpu_model

_PACKAGES = ("torch", "optuna", "albumentations", "numpy", "opencv-python-headless")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) from one integer."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@functools.lru_cache(maxsize=1)
def _versions() -> tuple[tuple[str, str], ...]:
    # Reading package metadata walks site-packages; once per process is enough (every trial asks).
    out = {"python": sys.version.split()[0], "hpsearch": __version__}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return tuple(out.items())


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that change results."""
    return dict(_versions())


@functools.cache
def hardware() -> dict[str, Any]:
    """CPU model, core count and torch threads: what a timing in a results table was measured on."""
    out: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(0)
    return out


def build_manifest(*, seed: int, device: str, split_hash: str, data_fingerprint: str, **extra: Any) -> dict:
    """Everything needed to say how a result was obtained."""
    return {
        "seed": seed,
        "device": device,
        "split_hash": split_hash,
        "data_fingerprint": data_fingerprint,
        "versions": package_versions(),
        "platform": platform.platform(),
        "hardware": hardware(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        **extra,
    }
