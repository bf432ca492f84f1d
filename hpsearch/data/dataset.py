"""Torch ``Dataset`` over the cached uint8 arrays, with an optional joint image/mask transform."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from hpsearch.errors import DataError

# ImageNet statistics (in 0..1 units). Encoders are often pretrained with them, and the Kvasir-SEG colour
# distribution is close enough that computing per-dataset values buys nothing measurable.
MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def normalize(image: np.ndarray, mean: Sequence[float] = MEAN, std: Sequence[float] = STD) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32, ``(x / 255 - mean) / std`` per channel."""
    std32 = np.asarray(std, np.float32)[:, None, None]
    scale = 1.0 / (255.0 * std32)
    shift = np.asarray(mean, np.float32)[:, None, None] / std32
    # One pass into a preallocated (3, H, W) buffer: casting, scaling and transposing as separate steps made
    # three full-size temporaries and was the slowest part of loading a cached batch.
    out = np.empty((3, *image.shape[:2]), np.float32)
    np.multiply(image.transpose(2, 0, 1), scale, out=out)
    out -= shift
    return out


def _memmap_source(arr: np.ndarray) -> str | None:
    """The .npy file behind ``arr`` when it is a whole-file memory map (so workers can reopen it)."""
    # A same-shape, C-contiguous view at the file's offset can only be the whole file, not a slice of it.
    if isinstance(arr, np.memmap) and arr.filename and arr.flags.c_contiguous:
        try:
            on_disk = np.load(arr.filename, mmap_mode="r")
        except (OSError, ValueError):
            return None
        if on_disk.shape == arr.shape and on_disk.dtype == arr.dtype and on_disk.offset == arr.offset:
            return str(arr.filename)
    return None


class SegmentationArrays(Dataset):
    """(image, mask) samples from uint8 arrays (N, S, S, 3) and (N, S, S) {0, 1}.

    Returns ``image`` float32 (3, S, S) normalised with ``mean``/``std`` and ``mask`` float32 (1, S, S) in
    {0, 1}. ``transform`` is an albumentations-style callable ``t(image=..., mask=...) -> dict``.

    With ``uint8_images=True`` the image stays uint8 (S, S, 3) and the training loop normalises the whole
    batch on the device: a quarter of the bytes through worker queues, pinned memory and the bus, and no
    per-image float work on the CPU.
    """

    def __init__(
        self,
        images: np.ndarray,
        masks: np.ndarray,
        transform: Callable[..., dict[str, Any]] | None = None,
        *,
        mean: Sequence[float] = MEAN,
        std: Sequence[float] = STD,
        uint8_images: bool = False,
    ) -> None:
        if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
            raise DataError(
                f"images array has shape {images.shape} {images.dtype}; expected (N, S, S, 3) uint8"
            )
        if masks.shape != images.shape[:3]:
            raise DataError(
                f"masks array has shape {masks.shape}; expected {images.shape[:3]} to match images"
            )
        self.images = images
        self.masks = masks
        self.transform = transform
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        if uint8_images and (self.mean != MEAN or self.std != STD):
            # The device-side normalisation uses the dataset constants; other values would be ignored.
            raise DataError("uint8_images=True normalises with the default MEAN/STD on the device")
        self.uint8_images = uint8_images
        self._seeded_for: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self.images)

    def _reseed_transform(self) -> None:
        """Give each DataLoader worker its own augmentation stream.

        albumentations 2.0 keeps its own RNG inside ``Compose``; forked workers would all inherit the same
        state and draw identical augmentations. ``torch.initial_seed()`` differs per worker (and per epoch
        unless workers persist) and follows ``torch.manual_seed`` in the main process, so runs stay
        reproducible for a seed.
        """
        key = (os.getpid(), torch.initial_seed())
        if key != self._seeded_for and hasattr(self.transform, "set_random_seed"):
            self.transform.set_random_seed(torch.initial_seed() % 2**32)
        self._seeded_for = key

    def rng_state(self) -> list[tuple[dict[str, Any], tuple[Any, ...]]]:
        """Where this process's augmentation stream stands (every transform's numpy and Python RNG), so a
        resumed run draws what an unbroken one would have drawn next."""
        return [(t.random_generator.bit_generator.state, t.py_random.getstate()) for t in self._rng_holders()]

    def set_rng_state(self, state: list[tuple[dict[str, Any], tuple[Any, ...]]]) -> None:
        """Continue the augmentation stream saved by ``rng_state`` (in this process)."""
        holders = self._rng_holders()
        if len(holders) != len(state):
            raise DataError(
                f"saved augmentation state is for {len(state)} transforms; this pipeline has {len(holders)}"
            )
        self._reseed_transform()  # first, so that it does not reseed over the restored state later
        for t, (np_state, py_state) in zip(holders, state, strict=True):
            t.random_generator.bit_generator.state = np_state
            t.py_random.setstate(py_state)

    def _rng_holders(self) -> list[Any]:
        # albumentations 2.0 gives the Compose and each transform in it an RNG pair of its own.
        found, todo = [], [self.transform] if self.transform is not None else []
        while todo:
            t = todo.pop(0)
            if hasattr(t, "random_generator") and hasattr(t, "py_random"):
                found.append(t)
            todo.extend(getattr(t, "transforms", None) or [])
        return found

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        # np.array copies out of the read-only memmap: transforms may write in place.
        image = np.array(self.images[index])
        mask = np.array(self.masks[index])
        if self.transform is not None:
            self._reseed_transform()
            out = self.transform(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        if self.uint8_images:
            x = torch.from_numpy(np.ascontiguousarray(image))
        else:
            x = torch.from_numpy(normalize(image, self.mean, self.std))
        y = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32)[None])
        return x, y

    def __getstate__(self) -> dict[str, Any]:
        # Spawned workers receive the dataset by pickle; a memmap would be pickled as a full in-memory copy,
        # so send the file name and reopen the map on the other side.
        state = self.__dict__.copy()
        for name in ("images", "masks"):
            source = _memmap_source(state[name])
            if source is not None:
                state[name] = ("__memmap__", source)
        state["_seeded_for"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name in ("images", "masks"):
            value = state[name]
            if isinstance(value, tuple) and len(value) == 2 and value[0] == "__memmap__":
                state[name] = np.load(value[1], mmap_mode="r")
        self.__dict__.update(state)
