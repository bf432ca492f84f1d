"""Augmentation and batching on the training device (the GPU path of the input pipeline).

The CPU path runs albumentations per image in DataLoader workers; at ~650 img/s per core for the basic
preset it cannot feed a GPU that trains at >1,000 img/s. Here the whole uint8 cache sits on the device and
the geometric part of a preset is one batched ``grid_sample``: flips, rot90, zoom and rotation are composed
into a single affine matrix per image. ``GeometricSpec`` is shared with the albumentations preset in
``augment.py`` so both paths mean the same thing; a test checks they agree for the same parameters.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from hpsearch.data.dataset import MEAN, STD


@dataclass(frozen=True)
class GeometricSpec:
    """Random geometric augmentation: what the 'basic' preset means on both paths."""

    hflip_p: float = 0.5
    vflip_p: float = 0.5
    rot90_p: float = 0.5
    affine_p: float = 0.5
    scale: tuple[float, float] = (0.9, 1.1)
    rotate: tuple[float, float] = (-15.0, 15.0)


DEVICE_PRESETS: dict[str, GeometricSpec | None] = {"none": None, "basic": GeometricSpec()}


def has_device_preset(name: str) -> bool:
    """Whether preset ``name`` has a device implementation (the photometric 'advanced' one does not)."""
    return name in DEVICE_PRESETS


def normalize_batch(images_uint8_nhwc: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 normalised with the dataset MEAN/STD."""
    x = images_uint8_nhwc.permute(0, 3, 1, 2).float()
    mean = torch.tensor(MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1) * 255.0
    return (x - mean) / std


def affine_matrices(
    hflip: torch.Tensor, vflip: torch.Tensor, k: torch.Tensor, scale: torch.Tensor, angle_deg: torch.Tensor
) -> torch.Tensor:
    """Forward maps (N, 2, 2) in normalised (x right, y down) coordinates, applied in albumentations order:
    horizontal flip, vertical flip, ``np.rot90`` by ``k`` (counter-clockwise on screen), then zoom and
    rotation about the centre (positive angle = counter-clockwise on screen, as cv2/albumentations)."""
    n = hflip.shape[0]
    dev = hflip.device
    eye = torch.eye(2, device=dev).expand(n, 2, 2).clone()
    h = eye.clone()
    h[:, 0, 0] = torch.where(hflip, -1.0, 1.0)
    v = eye.clone()
    v[:, 1, 1] = torch.where(vflip, -1.0, 1.0)
    # np.rot90 turns the array counter-clockwise on screen: with y pointing down, (x, y) -> (y, -x).
    r90 = torch.tensor([[0.0, 1.0], [-1.0, 0.0]], device=dev)
    rot = torch.stack([torch.linalg.matrix_power(r90, int(kk)) for kk in k.tolist()]) if n else eye
    a = torch.deg2rad(angle_deg)
    c, s = torch.cos(a), torch.sin(a)
    # Counter-clockwise on screen with y down: (x, y) -> (x cos + y sin, -x sin + y cos).
    aff = torch.stack([torch.stack([c, s], -1), torch.stack([-s, c], -1)], -2) * scale.view(n, 1, 1)
    return aff @ rot @ v @ h


def warp(
    images: torch.Tensor, masks: torch.Tensor, forward: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply forward maps (N, 2, 2) to float images (N, C, H, W) and masks (N, 1, H, W) about the centre.

    Images are interpolated bilinearly and masks with nearest neighbour (so they stay binary); pixels that
    come from outside are 0, like albumentations' constant border."""
    inv = torch.linalg.inv(forward)
    theta = torch.cat([inv, torch.zeros(inv.shape[0], 2, 1, device=inv.device)], dim=2)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    img = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    msk = F.grid_sample(
        masks, grid.to(masks.dtype), mode="nearest", padding_mode="zeros", align_corners=False
    )
    return img, msk


def sample_params(spec: GeometricSpec, n: int, gen: torch.Generator, device: torch.device) -> tuple:
    """Draw per-image parameters for a batch (on the CPU generator, so results do not depend on device)."""

    def bern(p: float) -> torch.Tensor:
        return torch.rand(n, generator=gen) < p

    hflip, vflip = bern(spec.hflip_p), bern(spec.vflip_p)
    k = torch.where(bern(spec.rot90_p), torch.randint(0, 4, (n,), generator=gen), 0)
    use_aff = bern(spec.affine_p)
    scale = torch.empty(n).uniform_(*spec.scale, generator=gen)
    angle = torch.empty(n).uniform_(*spec.rotate, generator=gen)
    scale = torch.where(use_aff, scale, 1.0)
    angle = torch.where(use_aff, angle, 0.0)
    return tuple(t.to(device) for t in (hflip, vflip, k, scale, angle))


class DeviceBatches:
    """Re-iterable (image, mask) batches from uint8 arrays held on ``device``, augmented there."""

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
        self.images = torch.from_numpy(np.array(images)).to(device)
        self.masks = torch.from_numpy(np.array(masks)).to(device)
        self.batch_size = batch_size
        self.device = device
        self.spec = DEVICE_PRESETS[preset]
        self.shuffle = shuffle
        self.gen = torch.Generator().manual_seed(seed)
        n = len(self.images)
        # Same rule as the CPU loader: BatchNorm cannot train on a ragged batch of one.
        self.drop_last = (n > batch_size) if drop_last is None else drop_last

    def __len__(self) -> int:
        n = len(self.images)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.images)
        order = torch.randperm(n, generator=self.gen) if self.shuffle else torch.arange(n)
        order = order.to(self.device)
        for b in range(len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            x = (
                normalize_batch(self.images[idx])
                if self.spec is None
                else self.images[idx].permute(0, 3, 1, 2).float()
            )
            y = self.masks[idx].unsqueeze(1).float()
            if self.spec is not None:
                params = sample_params(self.spec, len(idx), self.gen, self.device)
                x, y = warp(x, y, affine_matrices(*params))
                x = normalize_batch(x.permute(0, 2, 3, 1))
            yield x, y
