"""A small synthetic polyp-like dataset in the Kvasir-SEG layout, for tests, demos and smoke runs.

Images are textured pink/red "mucosa" with 1-2 lighter, more orange elliptical blobs with soft edges; the
masks are the blobs. About 10% of the masks are empty. The colour gap is large enough that a tiny U-Net
learns it in a couple of epochs, while the texture and lighting keep it from being a pure colour threshold.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np

from hpsearch.errors import DataError

EMPTY_FRACTION = 0.1
_PREFIX = "synth_"


def _smooth_noise(rng: np.random.Generator, size: int, cells: int, channels: int) -> np.ndarray:
    """Gaussian noise on a coarse grid, upsampled smoothly to (size, size, channels)."""
    cells = max(2, min(cells, size))
    coarse = rng.normal(0.0, 1.0, (cells, cells, channels)).astype(np.float32)
    up = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    return up.reshape(size, size, channels)


def _make_pair(rng: np.random.Generator, size: int, n_blobs: int) -> tuple[np.ndarray, np.ndarray]:
    """One (H, W, 3) uint8 RGB image and its (H, W) uint8 0/255 mask."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)

    base = np.array([200.0, 100.0, 95.0], np.float32) + rng.normal(0.0, 8.0, 3).astype(np.float32)
    image = np.broadcast_to(base, (size, size, 3)).copy()
    image += 18.0 * _smooth_noise(rng, size, 4, 3)  # large-scale colour blotches
    image += 7.0 * _smooth_noise(rng, size, max(4, size // 6), 1)  # fine mucosa texture, all channels

    mask = np.zeros((size, size), np.uint8)
    alpha = np.zeros((size, size), np.float32)
    blob = np.zeros((size, size, 3), np.float32)
    for _ in range(n_blobs):
        cx, cy = rng.uniform(0.2, 0.8, 2) * size
        ax, ay = rng.uniform(0.08, 0.25, 2) * size
        angle = float(rng.uniform(0.0, 180.0))
        one = np.zeros((size, size), np.uint8)
        cv2.ellipse(
            one,
            (int(round(cx)), int(round(cy))),
            (max(2, round(ax)), max(2, round(ay))),
            angle,
            0,
            360,
            255,
            -1,
        )
        mask = np.maximum(mask, one)
        # Soft edge on the image only; the label is the hard ellipse.
        soft = cv2.GaussianBlur(one.astype(np.float32) / 255.0, (0, 0), sigmaX=max(0.8, size / 90))
        colour = np.array([240.0, 170.0, 135.0], np.float32) + rng.normal(0.0, 8.0, 3).astype(np.float32)
        # Dome shading: polyps bulge towards the light, so their centre is brighter.
        d2 = ((xx * size - cx) / max(ax, 1.0)) ** 2 + ((yy * size - cy) / max(ay, 1.0)) ** 2
        dome = 1.0 + 0.08 * np.clip(1.0 - d2, 0.0, 1.0)
        blob = np.where((soft > alpha)[..., None], colour * dome[..., None], blob)
        alpha = np.maximum(alpha, soft)
    blob += 5.0 * _smooth_noise(rng, size, max(4, size // 8), 3)
    image = image * (1.0 - alpha[..., None]) + blob * alpha[..., None]

    # Uneven endoscope lighting: a random linear gradient and a vignette over everything.
    theta = rng.uniform(0.0, 2 * np.pi)
    gradient = (np.cos(theta) * (xx - 0.5) + np.sin(theta) * (yy - 0.5)) * rng.uniform(0.1, 0.3)
    vignette = 1.0 - 0.25 * ((xx - 0.5) ** 2 + (yy - 0.5) ** 2) * 2.0
    image *= (1.0 + gradient)[..., None] * vignette[..., None]
    image += rng.normal(0.0, 2.5, image.shape).astype(np.float32)  # sensor noise
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), mask


def _write_png(path: Path, array: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", array)
    if not ok:  # pragma: no cover - OpenCV only fails here on invalid arrays
        raise DataError(f"{path}: could not encode PNG")
    path.write_bytes(buf.tobytes())


def _prepare_folder(folder: Path) -> None:
    """Create ``folder``; clear it only when it holds nothing but an earlier synthetic set."""
    folder.mkdir(parents=True, exist_ok=True)
    existing = [p for p in folder.iterdir() if not p.name.startswith(".")]
    foreign = [p.name for p in existing if not (p.name.startswith(_PREFIX) and p.suffix == ".png")]
    if foreign:
        raise DataError(
            f"{folder} already holds other files ({', '.join(sorted(foreign)[:5])}); "
            "pass an empty or new folder to --out"
        )
    for p in existing:  # a previous synthetic set, perhaps with a different n: replace it entirely
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()


def make_synthetic(out_dir: str | Path, *, n: int, size: int = 64, seed: int = 0) -> Path:
    """Write ``n`` pairs as ``images/synth_0000.png`` and ``masks/synth_0000.png``; return ``out_dir``.

    Deterministic: the same (n, size, seed) writes the same pixels.
    """
    if n < 1:
        raise DataError(f"synthetic set size n={n}; expected at least 1 pair")
    if size < 16:
        raise DataError(f"synthetic image size {size}; expected at least 16 pixels")
    out = Path(out_dir).expanduser()
    images_dir, masks_dir = out / "images", out / "masks"
    try:
        _prepare_folder(images_dir)
        _prepare_folder(masks_dir)
    except OSError as exc:
        raise DataError(f"cannot write to {out} ({exc.strerror or exc}); choose a writable --out") from None

    n_empty = round(EMPTY_FRACTION * n)
    empty = set(np.random.default_rng([seed, n]).permutation(n)[:n_empty].tolist())
    width = max(4, len(str(n - 1)))
    for i in range(n):
        # One generator per image: image i does not depend on how many images come before it.
        rng = np.random.default_rng([seed, i, size])
        n_blobs = 0 if i in empty else int(rng.integers(1, 3))
        image, mask = _make_pair(rng, size, n_blobs)
        stem = f"{_PREFIX}{i:0{width}d}"
        _write_png(images_dir / f"{stem}.png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        _write_png(masks_dir / f"{stem}.png", mask)
    return out
