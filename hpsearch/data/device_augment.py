"""Augmentation and batching on the training device (the GPU path of the input pipeline).

The CPU path runs albumentations per image in DataLoader workers; at a few hundred to a few thousand img/s
per core for the basic preset it cannot feed a GPU that trains at >1,000 img/s. Here the whole uint8 cache
sits on the device and the geometric part of a preset is one batched ``grid_sample``: flips, rot90, zoom and
rotation are composed into a single affine map per image.

``GeometricSpec`` states what the 'basic' preset means; ``augment.py`` builds the albumentations version of
the same preset. ``tests/test_device_augment.py`` checks that the warp here equals albumentations' own
functional ops for identical parameters, and that the preset's parameters equal ``GeometricSpec``.

No step of an iteration waits for the device: parameters are drawn on a CPU generator (so a seed gives the
same augmentations on every device), the affine matrices are built and inverted on the CPU, and they reach
the device by one non-blocking copy per batch.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from hpsearch.data.dataset import MEAN, STD


@dataclass(frozen=True)
class GeometricSpec:
    """Random geometric augmentation: what the 'basic' preset means on both paths.

    Applied in this order, each with its own probability: horizontal flip, vertical flip, ``np.rot90`` by
    k ~ U{0..3}, then an affine zoom/rotation about the image centre (scale ~ U[scale], angle ~ U[rotate]
    degrees, counter-clockwise on screen for positive angles, one zoom factor for both axes when
    ``keep_ratio``). Fixed semantics, matching albumentations' ``Affine`` with these settings: no translation,
    no shear, constant 0 outside the frame (black image, background mask), bilinear images, nearest masks.
    """

    hflip_p: float = 0.5
    vflip_p: float = 0.5
    rot90_p: float = 0.5
    affine_p: float = 0.5
    scale: tuple[float, float] = (0.9, 1.1)
    rotate: tuple[float, float] = (-15.0, 15.0)
    keep_ratio: bool = True


DEVICE_PRESETS: dict[str, GeometricSpec | None] = {"none": None, "basic": GeometricSpec()}


@dataclass
class GeometricParams:
    """Per-image parameters of one batch (CPU tensors of length N)."""

    hflip: torch.Tensor  # bool
    vflip: torch.Tensor  # bool
    k: torch.Tensor  # int64 in 0..3, number of np.rot90 quarter turns
    scale_x: torch.Tensor  # float64
    scale_y: torch.Tensor  # float64
    angle_deg: torch.Tensor  # float64

    @classmethod
    def fixed(
        cls,
        n: int,
        *,
        hflip: bool = False,
        vflip: bool = False,
        k: int = 0,
        scale: float | tuple[float, float] = 1.0,
        angle_deg: float = 0.0,
    ) -> GeometricParams:
        """The same parameters for all ``n`` images (for tests and benchmarks)."""
        sx, sy = scale if isinstance(scale, tuple) else (scale, scale)
        return cls(
            hflip=torch.full((n,), hflip, dtype=torch.bool),
            vflip=torch.full((n,), vflip, dtype=torch.bool),
            k=torch.full((n,), k, dtype=torch.int64),
            scale_x=torch.full((n,), float(sx), dtype=torch.float64),
            scale_y=torch.full((n,), float(sy), dtype=torch.float64),
            angle_deg=torch.full((n,), float(angle_deg), dtype=torch.float64),
        )


def has_device_preset(name: str) -> bool:
    """Whether preset ``name`` has a device implementation (the photometric 'advanced' one does not)."""
    return name in DEVICE_PRESETS


@functools.lru_cache(maxsize=8)
def _norm_constants(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) of shape (1, 3, 1, 1) such that ``x * scale - shift`` normalises 0..255 values.

    Cached per device: a fresh pair would be a host-to-device copy (and a sync) for every batch. Callers
    must not modify the returned tensors.
    """
    std = torch.tensor(STD, dtype=torch.float32) * 255.0
    mean = torch.tensor(MEAN, dtype=torch.float32) * 255.0
    return (1.0 / std).view(1, 3, 1, 1).to(device), (mean / std).view(1, 3, 1, 1).to(device)


def normalize_batch(images_uint8_nhwc: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 (or float 0..255) -> (N, 3, H, W) float32 normalised with the dataset MEAN/STD.

    The result is a channels-last view of NCHW (no transposing copy); the constants are cached per device,
    so a call makes no host-to-device copy.
    """
    x = images_uint8_nhwc.permute(0, 3, 1, 2)
    scale, shift = _norm_constants(x.device)
    return torch.addcmul(-shift, x.float(), scale)


def affine_matrices(params: GeometricParams) -> torch.Tensor:
    """Forward maps (N, 2, 2) float64 in pixel units about the image centre (x right, y down).

    Composed in albumentations' order: horizontal flip, vertical flip, ``np.rot90`` by ``k`` (counter-
    clockwise on screen), then albumentations' ``Affine`` matrix ``R @ S``: scale, then rotation (positive
    angle = counter-clockwise on screen, as in cv2/albumentations).
    """
    n = params.hflip.shape[0]
    eye = torch.eye(2, dtype=torch.float64).expand(n, 2, 2)
    h = eye.clone()
    h[:, 0, 0] = torch.where(params.hflip, -1.0, 1.0)
    v = eye.clone()
    v[:, 1, 1] = torch.where(params.vflip, -1.0, 1.0)
    # np.rot90 turns the array counter-clockwise on screen: with y pointing down, (x, y) -> (y, -x).
    r90 = torch.tensor([[0.0, 1.0], [-1.0, 0.0]], dtype=torch.float64)
    quarter = torch.stack([torch.linalg.matrix_power(r90, i) for i in range(4)])
    rot = quarter[params.k.long() % 4]
    a = torch.deg2rad(params.angle_deg.double())
    c, s = torch.cos(a), torch.sin(a)
    r = torch.stack([torch.stack([c, s], -1), torch.stack([-s, c], -1)], -2)
    sc = torch.diag_embed(torch.stack([params.scale_x.double(), params.scale_y.double()], -1))
    return r @ sc @ rot @ v @ h


def sampling_theta(forward: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``affine_grid`` thetas (N, 2, 3) float32 for forward maps (N, 2, 2) in centred pixel units.

    ``grid_sample`` needs the inverse map (output -> input) in normalised coordinates, where
    ``align_corners=False`` puts -1 and 1 on the outer pixel edges; the image centre is 0 in both systems,
    and one pixel is 2/W horizontally and 2/H vertically.
    """
    d = torch.diag(torch.tensor([2.0 / width, 2.0 / height], dtype=torch.float64))
    d_inv = torch.diag(torch.tensor([width / 2.0, height / 2.0], dtype=torch.float64))
    inv = d @ torch.linalg.inv(forward) @ d_inv
    return torch.cat([inv, torch.zeros(inv.shape[0], 2, 1, dtype=inv.dtype)], dim=2).float()


def warp(images: torch.Tensor, masks: torch.Tensor, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp float images (N, C, H, W) and masks (N, 1, H, W) with ``sampling_theta`` output (on their device).

    Images are interpolated bilinearly and masks with nearest neighbour (so they stay binary); pixels that
    come from outside are 0, like albumentations' constant border with fill 0.
    """
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    img = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    msk = F.grid_sample(masks, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return img, msk


def apply_geometric(
    images: torch.Tensor, masks: torch.Tensor, params: GeometricParams
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply ``params`` to float images (N, C, H, W) in 0..255 and float masks (N, 1, H, W)."""
    h, w = images.shape[-2:]
    if h != w and bool((params.k % 2 == 1).any()):
        raise ValueError(f"a quarter turn of a {h}x{w} image changes its shape; rot90 needs square images")
    theta = sampling_theta(affine_matrices(params), h, w)
    return warp(images, masks, _to_device(theta, images.device))


def sample_params(spec: GeometricSpec, n: int, gen: torch.Generator) -> GeometricParams:
    """Draw per-image parameters for a batch on a CPU generator, so a seed means the same on every device."""

    def bern(p: float) -> torch.Tensor:
        return torch.rand(n, generator=gen, dtype=torch.float64) < p

    hflip, vflip = bern(spec.hflip_p), bern(spec.vflip_p)
    k = torch.where(bern(spec.rot90_p), torch.randint(0, 4, (n,), generator=gen), 0)
    use_aff = bern(spec.affine_p)
    sx = torch.empty(n, dtype=torch.float64).uniform_(*spec.scale, generator=gen)
    sy = (
        sx.clone()
        if spec.keep_ratio
        else torch.empty(n, dtype=torch.float64).uniform_(*spec.scale, generator=gen)
    )
    angle = torch.empty(n, dtype=torch.float64).uniform_(*spec.rotate, generator=gen)
    one, zero = torch.ones((), dtype=torch.float64), torch.zeros((), dtype=torch.float64)
    return GeometricParams(
        hflip=hflip,
        vflip=vflip,
        k=k,
        scale_x=torch.where(use_aff, sx, one),
        scale_y=torch.where(use_aff, sy, one),
        angle_deg=torch.where(use_aff, angle, zero),
    )


def _to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Copy a small CPU tensor to ``device`` without blocking the host (pinned staging on CUDA)."""
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


class DeviceBatches:
    """Re-iterable (image, mask) batches from uint8 arrays held on ``device``, augmented there.

    ``drop_last`` defaults to dropping the ragged tail only when shuffling (training), like
    ``session.build_loaders``' DataLoaders: validation sees every image.

    Yields ``(x, y)``: x float32 (N, 3, H, W) normalised with MEAN/STD (``fit`` sets the memory format),
    y float32 (N, 1, H, W) in {0, 1}. The shuffle order and the augmentation parameters come from one CPU
    generator seeded with ``seed``, so two instances with the same seed yield the same batches on any device.
    """

    def __init__(
        self,
        images: np.ndarray,
        masks: np.ndarray,
        *,
        batch_size: int,
        device: torch.device,
        preset: str = "none",
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        # np.array copies: the cache is a read-only memory map, and on the CPU .to() would not copy.
        self.images = torch.from_numpy(np.array(images)).to(self.device)
        self.masks = torch.from_numpy(np.array(masks)).to(self.device)
        self.batch_size = batch_size
        self.spec = DEVICE_PRESETS[preset]
        if self.spec is not None and self.spec.rot90_p > 0 and self.images.shape[1] != self.images.shape[2]:
            raise ValueError(
                f"preset '{preset}' turns images by quarter turns, which needs square images; got "
                f"{self.images.shape[1]}x{self.images.shape[2]}"
            )
        self.shuffle = shuffle
        self.generator = torch.Generator().manual_seed(seed)
        n = len(self.images)
        # Same rules as the CPU loaders: a shuffled (training) source drops its ragged tail, because
        # BatchNorm cannot train on a batch of one; an ordered (validation) source keeps every image.
        self.drop_last = (shuffle and n > batch_size) if drop_last is None else drop_last

    def __len__(self) -> int:
        n = len(self.images)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def state_dict(self) -> dict[str, Any]:
        """Where the one generator (shuffle order and augmentation draws) stands (``fit``'s resume state)."""
        return {"generator": self.generator.get_state(), "augment": None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the stream saved by ``state_dict``."""
        if state.get("generator") is not None:
            self.generator.set_state(state["generator"])

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.images)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        order = _to_device(order, self.device)
        for b in range(len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            images = self.images[idx]
            y = self.masks[idx].unsqueeze(1).float()
            if self.spec is None:
                yield normalize_batch(images), y
                continue
            params = sample_params(self.spec, idx.shape[0], self.generator)
            x, y = apply_geometric(images.permute(0, 3, 1, 2).float(), y, params)
            yield normalize_batch(x.permute(0, 2, 3, 1)), y
