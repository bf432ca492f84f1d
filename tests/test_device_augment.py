"""The device-side 'basic' augmentation against albumentations, and the DeviceBatches source.

Parity is checked op by op against albumentations' own functional code with identical fixed parameters
(flips, np.rot90 turns, the Affine matrix about the centre), then for a whole batch whose parameters come
from one seeded draw. A separate test checks that the albumentations preset in ``augment.py`` has the same
parameters as ``GeometricSpec``, so that both paths draw from the same distribution.
"""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from albumentations.augmentations.geometric import functional as fgeo  # noqa: E402

from hpsearch.data.augment import build_transform  # noqa: E402
from hpsearch.data.dataset import normalize  # noqa: E402
from hpsearch.data.device_augment import (  # noqa: E402
    DEVICE_PRESETS,
    DeviceBatches,
    GeometricParams,
    GeometricSpec,
    apply_geometric,
    has_device_preset,
    sample_params,
)

SIZE = 64
CPU = torch.device("cpu")


def _image(seed: int = 0, size: int = SIZE) -> np.ndarray:
    """A smooth RGB image (like a photo, unlike white noise) so that bilinear results are comparable."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (8, 8, 3)).astype(np.float32)
    return np.clip(cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8)


def _mask(seed: int = 0, size: int = SIZE) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mask = np.zeros((size, size), np.uint8)
    centre = (int(rng.integers(20, 44)), int(rng.integers(20, 44)))
    cv2.ellipse(mask, centre, (15, 9), float(rng.uniform(0, 180)), 0, 360, 1, -1)
    mask[5, 50] = 1  # an isolated pixel: any interpolation other than nearest would lose or smear it
    return mask


def _matrix(scale: tuple[float, float], angle: float, shape: tuple[int, int]) -> np.ndarray:
    """albumentations' Affine matrix: zoom and rotation about the image centre, no shift or shear."""
    return fgeo.create_affine_transformation_matrix(
        translate={"x": 0, "y": 0},
        shear={"x": 0.0, "y": 0.0},
        scale={"x": scale[0], "y": scale[1]},
        rotate=angle,
        shift=fgeo.center(shape),
    )


def _albumentations(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    hflip: bool,
    vflip: bool,
    k: int,
    scale: tuple[float, float],
    angle: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The 'basic' chain with fixed parameters, through albumentations' own functional ops and settings."""
    # The flip transforms' own apply (albumentations delegates it to albucore, which it does not promise).
    if hflip:
        flip = A.HorizontalFlip(p=1.0)
        image, mask = flip.apply(image), flip.apply_to_mask(mask)
    if vflip:
        flip = A.VerticalFlip(p=1.0)
        image, mask = flip.apply(image), flip.apply_to_mask(mask)
    image, mask = np.ascontiguousarray(fgeo.rot90(image, k)), np.ascontiguousarray(fgeo.rot90(mask, k))
    shape = image.shape[:2]
    matrix = _matrix(scale, angle, shape)
    image = fgeo.warp_affine(image, matrix, cv2.INTER_LINEAR, 0, cv2.BORDER_CONSTANT, shape)
    mask = fgeo.warp_affine(mask, matrix, cv2.INTER_NEAREST, 0, cv2.BORDER_CONSTANT, shape)
    return image, mask


def _device(images: np.ndarray, masks: np.ndarray, params: GeometricParams) -> tuple[np.ndarray, np.ndarray]:
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    y = torch.from_numpy(masks)[:, None].float()
    xi, yi = apply_geometric(x, y, params)
    return xi.permute(0, 2, 3, 1).numpy(), yi[:, 0].numpy()


# What "the same warp" allows, measured with OpenCV 4.9, 4.14, 5.0 and 5.1 on an Intel Xeon host:
# - Interior pixels (all four bilinear taps inside the image): albumentations rounds to uint8 (0.5 grey
#   levels), and OpenCV 4.x computes sampling positions in fixed point (1/32 pixel), which costs up to about
#   1/64 pixel times the local slope: these smooth test images rise by at most ~45 levels per pixel, so
#   0.7 more (1.23 seen in all, with OpenCV 4.9). OpenCV 5.x stays within the 0.5 of rounding.
INTERIOR_TOL = 1.5
# - Pixels whose taps straddle the image edge mix the image with the black fill; OpenCV 4.x's 1/32-pixel
#   weights can misweigh that mix by up to 1/32 of a full 0..255 step (about 5 levels seen, 8 allowed).
EDGE_TOL = 0.5 + 255 / 32
# - Mean over all pixels and channels: rounding alone is about 0.25 levels; a mis-rotated warp is > 2.
MEAN_TOL = 0.35


def _edge_band(matrix: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Pixels whose bilinear taps straddle the image edge (a warped all-ones image is neither 0 nor 1 there),
    and their neighbours."""
    ones = np.ones(shape, np.float32)
    warped = fgeo.warp_affine(ones, matrix, cv2.INTER_LINEAR, 0, cv2.BORDER_CONSTANT, shape)
    band = ((warped > 1e-6) & (warped < 1 - 1e-6)).astype(np.uint8)
    # One pixel wider: OpenCV 4.x places the edge up to 1/32 pixel off, moving a pixel in or out of the band.
    return cv2.dilate(band, np.ones((3, 3), np.uint8)).astype(bool)


def _mask_boundary(mask: np.ndarray) -> np.ndarray:
    """Pixels with both values in their 3x3 neighbourhood."""
    kernel = np.ones((3, 3), np.uint8)
    return cv2.dilate(mask, kernel) != cv2.erode(mask, kernel)


def _assert_same(
    dev_img: np.ndarray,
    ref_img: np.ndarray,
    dev_mask: np.ndarray,
    ref_mask: np.ndarray,
    *,
    scale: tuple[float, float],
    angle: float,
) -> None:
    """Same geometry: images within interpolation rounding, masks equal but for boundary pixels."""
    channels = np.abs(dev_img - ref_img.astype(np.float32))
    diff = channels.max(axis=-1)
    edge = _edge_band(_matrix(scale, angle, diff.shape), diff.shape)
    assert diff[~edge].max() <= INTERIOR_TOL, f"interior: max image difference {diff[~edge].max():.2f} levels"
    if edge.any():
        assert diff[edge].max() <= EDGE_TOL, f"edge band: max image difference {diff[edge].max():.2f} levels"
    assert channels.mean() <= MEAN_TOL, f"mean image difference {channels.mean():.3f} levels"
    assert set(np.unique(dev_mask).tolist()) <= {0.0, 1.0}
    # Nearest-neighbour sampling at a position exactly between two pixels may round either way: a mask
    # pixel may differ only where the reference mask has both values next to each other.
    off = (dev_mask != ref_mask) & ~_mask_boundary(ref_mask)
    assert not off.any(), f"{int(off.sum())} mask pixels differ away from the mask's boundary"


@pytest.mark.parametrize(
    ("hflip", "vflip", "k"),
    [
        (True, False, 0),
        (False, True, 0),
        (True, True, 0),
        (False, False, 1),
        (False, False, 2),
        (True, False, 3),
    ],
)
def test_flips_and_quarter_turns_equal_albumentations_exactly(hflip: bool, vflip: bool, k: int) -> None:
    image, mask = _image(), _mask()
    ref_img, ref_mask = _albumentations(image, mask, hflip=hflip, vflip=vflip, k=k, scale=(1, 1), angle=0)
    params = GeometricParams.fixed(1, hflip=hflip, vflip=vflip, k=k)
    dev_img, dev_mask = _device(image[None], mask[None], params)
    np.testing.assert_allclose(dev_img[0], ref_img.astype(np.float32), atol=1e-3)
    np.testing.assert_array_equal(dev_mask[0], ref_mask)


@pytest.mark.parametrize(
    ("scale", "angle"),
    [((1.1, 1.1), 0.0), ((0.9, 0.9), 0.0), ((1.0, 1.0), 15.0), ((1.0, 1.0), -15.0), ((0.93, 0.93), 7.3)],
)
def test_affine_zoom_and_rotation_equal_albumentations(scale: tuple[float, float], angle: float) -> None:
    image, mask = _image(1), _mask(1)
    ref_img, ref_mask = _albumentations(image, mask, hflip=False, vflip=False, k=0, scale=scale, angle=angle)
    dev_img, dev_mask = _device(
        image[None], mask[None], GeometricParams.fixed(1, scale=scale, angle_deg=angle)
    )
    _assert_same(dev_img[0], ref_img, dev_mask[0], ref_mask, scale=scale, angle=angle)
    # The comparison can fail: the opposite rotation direction is far off.
    wrong, _ = _device(image[None], mask[None], GeometricParams.fixed(1, scale=scale, angle_deg=-angle))
    if angle:
        assert np.abs(wrong[0] - ref_img).mean() > 2.0


def test_composed_chain_equals_albumentations() -> None:
    image, mask = _image(2), _mask(2)
    kw = {"hflip": True, "vflip": True, "k": 3, "scale": (1.07, 1.07), "angle": 7.3}
    ref_img, ref_mask = _albumentations(image, mask, **kw)
    params = GeometricParams.fixed(1, hflip=True, vflip=True, k=3, scale=(1.07, 1.07), angle_deg=7.3)
    dev_img, dev_mask = _device(image[None], mask[None], params)
    _assert_same(dev_img[0], ref_img, dev_mask[0], ref_mask, scale=kw["scale"], angle=kw["angle"])


def test_anisotropic_zoom_equals_albumentations() -> None:
    """What albumentations' Affine does with keep_ratio=False (independent x and y zoom factors)."""
    image, mask = _image(3), _mask(3)
    kw = {"hflip": False, "vflip": False, "k": 0, "scale": (0.92, 1.08), "angle": 10.0}
    ref_img, ref_mask = _albumentations(image, mask, **kw)
    dev_img, dev_mask = _device(
        image[None], mask[None], GeometricParams.fixed(1, scale=(0.92, 1.08), angle_deg=10)
    )
    _assert_same(dev_img[0], ref_img, dev_mask[0], ref_mask, scale=(0.92, 1.08), angle=10.0)


def test_functional_reference_is_what_the_affine_transform_does() -> None:
    """The helper above builds the same matrix as ``A.Affine`` itself (centre, order, direction)."""
    image, mask = _image(4), _mask(4)
    transform = A.Affine(
        scale=(1.06, 1.06),
        rotate=(-11.0, -11.0),
        keep_ratio=True,
        interpolation=cv2.INTER_LINEAR,
        mask_interpolation=cv2.INTER_NEAREST,
        border_mode=cv2.BORDER_CONSTANT,
        fill=0,
        fill_mask=0,
        p=1.0,
    )
    out = transform(image=image, mask=mask)
    ref_img, ref_mask = _albumentations(
        image, mask, hflip=False, vflip=False, k=0, scale=(1.06, 1.06), angle=-11
    )
    np.testing.assert_array_equal(out["image"], ref_img)
    np.testing.assert_array_equal(out["mask"], ref_mask)


def test_a_seeded_batch_agrees_with_albumentations_image_by_image() -> None:
    """Same seed, same transform: the parameters drawn for a batch, applied by both implementations."""
    n = 12
    images = np.stack([_image(i) for i in range(n)])
    masks = np.stack([_mask(i) for i in range(n)])
    params = sample_params(GeometricSpec(), n, torch.Generator().manual_seed(123))
    assert (
        params.hflip.any() and (~params.hflip).any() and (params.k > 0).any() and (params.scale_x != 1).any()
    )
    dev_img, dev_mask = _device(images, masks, params)
    for i in range(n):
        scale, angle = (float(params.scale_x[i]), float(params.scale_y[i])), float(params.angle_deg[i])
        ref_img, ref_mask = _albumentations(
            images[i],
            masks[i],
            hflip=bool(params.hflip[i]),
            vflip=bool(params.vflip[i]),
            k=int(params.k[i]),
            scale=scale,
            angle=angle,
        )
        _assert_same(dev_img[i], ref_img, dev_mask[i], ref_mask, scale=scale, angle=angle)


def _basic_preset() -> list:
    return list(build_transform("basic", SIZE).transforms)


def test_basic_preset_has_the_spec_ops_probabilities_ranges_and_borders() -> None:
    spec = DEVICE_PRESETS["basic"]
    assert spec == GeometricSpec()
    ops = _basic_preset()
    assert [type(t).__name__ for t in ops] == ["HorizontalFlip", "VerticalFlip", "RandomRotate90", "Affine"]
    assert [t.p for t in ops] == [spec.hflip_p, spec.vflip_p, spec.rot90_p, spec.affine_p]
    aff = ops[3]
    assert aff.scale == {"x": spec.scale, "y": spec.scale}
    assert tuple(aff.rotate) == spec.rotate
    for translate in (aff.translate_px, aff.translate_percent):  # albumentations keeps one of the two
        assert translate is None or all(v == 0 for pair in translate.values() for v in pair)
    assert aff.shear == {"x": (0.0, 0.0), "y": (0.0, 0.0)}
    assert aff.interpolation == cv2.INTER_LINEAR and aff.mask_interpolation == cv2.INTER_NEAREST
    assert aff.border_mode == cv2.BORDER_CONSTANT and aff.fill == 0 and aff.fill_mask == 0
    assert not aff.fit_output and not aff.balanced_scale


def test_basic_preset_zoom_keeps_the_aspect_ratio_like_the_spec() -> None:
    aff = _basic_preset()[3]
    assert aff.keep_ratio == DEVICE_PRESETS["basic"].keep_ratio


def test_sampled_parameters_follow_the_spec() -> None:
    spec = GeometricSpec()
    p = sample_params(spec, 20_000, torch.Generator().manual_seed(0))
    assert abs(p.hflip.double().mean() - spec.hflip_p) < 0.02
    assert abs(p.vflip.double().mean() - spec.vflip_p) < 0.02
    # k = 0 when rot90 is skipped (prob 1 - p) or drawn as 0 (p / 4).
    counts = torch.bincount(p.k, minlength=4).double() / len(p.k)
    expected = torch.tensor([1 - spec.rot90_p * 3 / 4] + [spec.rot90_p / 4] * 3, dtype=torch.float64)
    assert torch.allclose(counts, expected, atol=0.02)
    used = p.scale_x != 1.0
    assert abs(used.double().mean() - spec.affine_p) < 0.02
    assert torch.equal(p.scale_x, p.scale_y)  # keep_ratio
    assert spec.scale[0] <= p.scale_x.min() and p.scale_x.max() <= spec.scale[1]
    assert spec.rotate[0] <= p.angle_deg.min() and p.angle_deg.max() <= spec.rotate[1]
    assert (p.angle_deg[~used] == 0).all()
    free = sample_params(GeometricSpec(keep_ratio=False), 1000, torch.Generator().manual_seed(0))
    assert not torch.equal(free.scale_x, free.scale_y)


def _arrays(n: int = 10, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    masks = (rng.random((n, size, size)) < 0.3).astype(np.uint8)
    return images, masks


def test_device_batches_without_augmentation_equal_the_cpu_dataset_normalisation() -> None:
    images, masks = _arrays()
    # Ordered, as validation uses it: every image, in order, the ragged tail included.
    batches = list(DeviceBatches(images, masks, batch_size=4, device=CPU, preset="none", shuffle=False))
    assert [len(x) for x, _ in batches] == [4, 4, 2]
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    expected = np.stack([normalize(im) for im in images])
    np.testing.assert_allclose(x.numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(y[:, 0].numpy(), masks.astype(np.float32))
    val = DeviceBatches(images, masks, batch_size=32, device=CPU, preset="none", shuffle=False)
    assert len(val) == 1 and len(next(iter(val))[0]) == 10
    # Shuffled, as training uses it: the ragged tail is dropped (BatchNorm cannot train on one image).
    train = DeviceBatches(images, masks, batch_size=4, device=CPU, preset="basic", shuffle=True)
    assert len(train) == 2 and [len(x) for x, _ in train] == [4, 4]


def test_device_batches_are_seeded_shuffled_and_cover_every_image_once() -> None:
    images, masks = _arrays(12)
    images[:, 0, 0, 0] = np.arange(12)  # tag each image

    def epoch(seed: int, preset: str = "none") -> list[torch.Tensor]:
        src = DeviceBatches(images, masks, batch_size=4, device=CPU, preset=preset, seed=seed)
        return [x for x, _ in src]

    first = epoch(0)
    tags = torch.cat([x[:, 0, 0, 0] for x in first]) * 0.229 * 255 + 0.485 * 255
    assert sorted(tags.round().long().tolist()) == list(range(12))
    assert tags.round().long().tolist() != list(range(12))  # shuffled
    for a, b in zip(epoch(5, "basic"), epoch(5, "basic"), strict=True):
        assert torch.equal(a, b)
    assert not all(torch.equal(a, b) for a, b in zip(epoch(5, "basic"), epoch(6, "basic"), strict=True))


def test_device_batches_move_image_and_mask_together() -> None:
    _, masks = _arrays(16, 48)
    masks[:] = 0
    masks[:, 10:30, 14:40] = 1
    images = np.repeat(masks[..., None] * 255, 3, axis=3).astype(np.uint8)
    src = DeviceBatches(images, masks, batch_size=8, device=CPU, preset="basic", seed=3)
    for x, y in src:
        assert set(torch.unique(y).tolist()) <= {0.0, 1.0}
        red = x[:, 0] * 0.229 * 255 + 0.485 * 255  # back to grey levels
        agree = ((red >= 128) == (y[:, 0] == 1)).double().mean()
        assert agree > 0.98


def test_presets_and_input_checks() -> None:
    assert has_device_preset("basic") and has_device_preset("none") and not has_device_preset("advanced")
    images, masks = _arrays(4, 16)
    with pytest.raises(ValueError, match="square"):
        DeviceBatches(images[:, :, :12], masks[:, :, :12], batch_size=2, device=CPU, preset="basic")
    with pytest.raises(ValueError, match="rot90 needs square"):
        apply_geometric(torch.zeros(1, 3, 8, 12), torch.zeros(1, 1, 8, 12), GeometricParams.fixed(1, k=1))


def test_build_loaders_device_path_validates_every_image() -> None:
    """``augment_on: device`` through ``runner.build_loaders`` (on the CPU): all 88 validation images seen."""
    from pathlib import Path

    from hpsearch.training.config import DataConfig, RunConfig, TrainConfig
    from hpsearch.training.session import PreparedData, build_loaders

    images, masks = _arrays(100, 16)
    data = PreparedData(
        data_dir=Path("."),
        pairs=[],
        split=None,  # type: ignore[arg-type]
        fingerprint="",
        train_images=images[:12],
        train_masks=masks[:12],
        val_images=images[12:],
        val_masks=masks[12:],
        val_stems=[str(i) for i in range(88)],
    )
    cfg = RunConfig(data=DataConfig(augment_on="device"), train=TrainConfig(batch_size=8, device="cpu"))
    train, val = build_loaders(cfg, data, CPU)
    assert isinstance(train, DeviceBatches) and isinstance(val, DeviceBatches)
    assert sum(len(x) for x, _ in val) == 88
    assert [len(x) for x, _ in train] == [8]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_batches_equal_cpu_batches_for_a_seed() -> None:
    images, masks = _arrays(16, 64)
    cpu = DeviceBatches(images, masks, batch_size=8, device=CPU, preset="basic", seed=9)
    gpu = DeviceBatches(images, masks, batch_size=8, device=torch.device("cuda"), preset="basic", seed=9)
    for (xc, yc), (xg, yg) in zip(cpu, gpu, strict=True):
        assert torch.allclose(xc, xg.cpu(), atol=1e-3)
        assert (yc != yg.cpu()).double().mean() < 1e-3
