"""Augmentation presets (albumentations 2.0.x), applied jointly to an image and its mask.

Every geometric transform samples the mask with nearest-neighbour interpolation, so a {0, 1} mask stays
binary. Inputs are already (size, size) from the cache, so no preset needs a final resize.
"""

from __future__ import annotations

import os
from collections.abc import Callable

# albumentations otherwise asks PyPI for a newer version on import: a network call (and a printed notice) in
# every training run and worker. A user can still opt in by setting the variable to 0.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import cv2  # noqa: E402

from hpsearch.registry import Registry  # noqa: E402

PresetFactory = Callable[[int], list[A.BasicTransform | A.BaseCompose]]
PRESETS: Registry[PresetFactory] = Registry("augmentation preset")

_MASK_NEAREST = cv2.INTER_NEAREST
# Constant 0 (black image, background mask) outside the frame, like the device-side path in
# device_augment.py, so that 'basic' means the same thing whichever path runs it. Kvasir-SEG frames already
# have black borders, so this adds no new kind of artefact.
_BORDER = cv2.BORDER_CONSTANT


@PRESETS.register("none")
def _none(size: int) -> list[A.BasicTransform | A.BaseCompose]:
    """No augmentation: the deterministic evaluation transform."""
    return []


def _basic_transforms() -> list[A.BasicTransform | A.BaseCompose]:
    return [
        A.HorizontalFlip(p=0.5),
        A.VerticalFlip(p=0.5),
        A.RandomRotate90(p=0.5),
        A.Affine(
            scale=(0.9, 1.1),
            # One zoom factor for both axes, as the device path (GeometricSpec) does.
            keep_ratio=True,
            rotate=(-15, 15),
            interpolation=cv2.INTER_LINEAR,
            mask_interpolation=_MASK_NEAREST,
            border_mode=_BORDER,
            fill=0,
            fill_mask=0,
            p=0.5,
        ),
    ]


@PRESETS.register("basic")
def _basic(size: int) -> list[A.BasicTransform | A.BaseCompose]:
    """Flips, 90-degree rotations and a slight zoom/rotation (the report's first phase)."""
    return _basic_transforms()


@PRESETS.register("advanced")
def _advanced(size: int) -> list[A.BasicTransform | A.BaseCompose]:
    """``basic`` plus crops, shear/translation, elastic warps and colour/contrast/blur changes (phase two)."""
    return [
        *_basic_transforms(),
        A.Affine(
            translate_percent=(-0.1, 0.1),
            shear=(-10, 10),
            interpolation=cv2.INTER_LINEAR,
            mask_interpolation=_MASK_NEAREST,
            border_mode=_BORDER,
            fill=0,
            fill_mask=0,
            p=0.3,
        ),
        A.RandomResizedCrop(
            size=(size, size),
            scale=(0.7, 1.0),
            interpolation=cv2.INTER_LINEAR,
            mask_interpolation=_MASK_NEAREST,
            p=0.5,
        ),
        A.ElasticTransform(
            alpha=size * 0.1,
            sigma=size * 0.05,
            interpolation=cv2.INTER_LINEAR,
            mask_interpolation=_MASK_NEAREST,
            border_mode=_BORDER,
            fill=0,
            fill_mask=0,
            p=0.2,
        ),
        A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.5),
        # Small hue shifts only: colour is a real cue for polyps versus mucosa.
        A.ColorJitter(brightness=0.1, contrast=0.1, saturation=0.15, hue=0.03, p=0.3),
        A.CLAHE(clip_limit=2.0, tile_grid_size=(8, 8), p=0.2),
        A.OneOf([A.GaussianBlur(blur_limit=(3, 5), p=1.0), A.Blur(blur_limit=(3, 5), p=1.0)], p=0.2),
    ]


def build_transform(name: str, size: int) -> A.Compose:
    """The named preset as one ``A.Compose``; call it as ``t(image=img, mask=mask)``.

    Unknown names raise ``ConfigError`` listing the presets.
    """
    factory = PRESETS.get(name)
    return A.Compose(factory(size))
