"""Reading images and masks (JPEG/PNG/BMP via OpenCV, TIFF via tifffile) plus small shared I/O helpers.

Every decode failure becomes a one-line ``DataError`` naming the file, so the CLI never shows a traceback
for a bad dataset.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import tifffile
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from hpsearch.errors import DataError

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")

# We turn every failed decode into a DataError ourselves; OpenCV's own log lines on stderr would only add
# noise around that one-line message.
# OpenCV >= 4.13 has cv2.utils.logging; older releases only the top-level setter (0 is silent in both).
_CV2_LOGGING = getattr(cv2.utils, "logging", None)
if _CV2_LOGGING is not None:
    _CV2_LOGGING.setLogLevel(_CV2_LOGGING.LOG_LEVEL_SILENT)
else:
    cv2.setLogLevel(0)

_JPEG_MAGIC = b"\xff\xd8\xff"
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF
_EOI = b"\xff\xd9"
_SOS = b"\xff\xda"


# The folder that holds the hpsearch package: the repository in a checkout (configs/, hpsearch/splits/).
_PACKAGE_PARENT = Path(__file__).resolve().parents[2]


def shipped_path(path: str | Path) -> Path | None:
    """``path`` relative to the repository when it is a file that ships with hpsearch, else None."""
    target = Path(path).expanduser().resolve()
    return target.relative_to(_PACKAGE_PARENT) if target.is_relative_to(_PACKAGE_PARENT) else None


def portable_path(path: str | Path, base: str | Path, *, shipped: bool = False) -> str:
    """How a written record names ``path``, so that no result carries one machine's folders.

    Relative to ``base`` (the folder the record is written to), with ``..`` steps for a path beside it (a
    data folder next to the results), which stays right when the two move together. With ``shipped``, a
    file that ships with hpsearch (``configs/...``, ``hpsearch/splits/...``) is named relative to the
    repository instead, as a reader finds it in any checkout.
    """
    target = Path(path).expanduser().resolve()
    root = Path(base).expanduser().resolve()
    if target.is_relative_to(root):
        return target.relative_to(root).as_posix() or "."
    if shipped and (in_repo := shipped_path(target)) is not None:
        return in_repo.as_posix()
    try:
        return Path(os.path.relpath(target, root)).as_posix()
    except ValueError:  # another drive on Windows: no relative form exists
        return str(target)


def default_cache_root() -> Path:
    """The hpsearch cache folder: ``$HPSEARCH_CACHE`` or ``~/.cache/hpsearch``."""
    env = os.environ.get("HPSEARCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "hpsearch"


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Progress]:
    """A transient rich progress bar, silently disabled when stderr is not a terminal (tests, logs)."""
    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not (enabled and console.is_terminal),
    ) as bar:
        yield bar


def read_bytes(path: str | Path) -> bytes:
    """Read a whole file, turning OS errors into a DataError naming it."""
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; check the data folder or re-run the download") from None
    except OSError as exc:
        reason = exc.strerror or exc
        raise DataError(f"{path}: cannot read the file ({reason}); check its permissions") from None


def jpeg_is_complete(data: bytes) -> bool:
    """True when a JPEG byte string ends its last scan with an end-of-image marker (FFD9).

    OpenCV 4.x fills a truncated JPEG with grey instead of failing, so truncation is checked on the bytes.
    The fast path is an EOI at the very end (after zero padding some encoders add). Otherwise an EOI must
    follow the last start-of-scan marker: entropy-coded data never contains FFD9 or FFDA, so this still
    accepts files with trailing metadata after the image while rejecting a cut-off final scan.
    """
    if data.rstrip(b"\x00").endswith(_EOI):
        return True
    last_sos = data.rfind(_SOS)
    return last_sos != -1 and data.find(_EOI, last_sos) != -1


def _decode_tiff(data: bytes, path: Path) -> np.ndarray:
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            arr = np.asarray(tif.asarray())
    except Exception as exc:  # tifffile raises many types (ValueError, TiffFileError, KeyError, ...)
        raise DataError(
            f"{path}: cannot decode TIFF ({exc}); the file is corrupt, truncated or uses an unsupported "
            "compression; re-export it as PNG or uncompressed TIFF"
        ) from None
    # Leading singleton axes (one page, one sample) carry no information.
    while arr.ndim > 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[0] in (1, 2, 3, 4) and arr.shape[2] not in (1, 2, 3, 4):
        arr = np.moveaxis(arr, 0, -1)  # planar (C, H, W) -> (H, W, C)
    if arr.ndim not in (2, 3):
        raise DataError(
            f"{path}: TIFF holds an array of shape {arr.shape}; expected one 2-D image (H, W) or (H, W, C); "
            "save a single page per file"
        )
    return arr


def _decode_raw(data: bytes, path: Path) -> np.ndarray:
    """Decode to (H, W) or (H, W, C) in the file's own dtype; colour channels in RGB(A) order."""
    if not data:
        raise DataError(f"{path}: file is empty (0 bytes); re-copy it or remove the pair")
    # Choose the decoder by content, not by extension: a PNG saved as .jpg is still readable.
    if data[:4] in _TIFF_MAGICS:
        return _decode_tiff(data, path)
    is_jpeg = data[:3] == _JPEG_MAGIC
    if is_jpeg and not jpeg_is_complete(data):
        raise DataError(
            f"{path}: truncated JPEG (no end-of-image marker after the last scan); re-copy or re-download it"
        )
    # IMREAD_UNCHANGED keeps the file's depth and channels, and also ignores EXIF orientation, so an image
    # and its mask stay aligned pixel for pixel even when only one of them carries an orientation tag.
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        what = "JPEG" if is_jpeg else "image"
        raise DataError(
            f"{path}: cannot decode {what} (corrupt, truncated or not an image; expected one of "
            f"{', '.join(IMAGE_EXTENSIONS)}); re-copy or remove the pair"
        )
    if arr.ndim == 3 and arr.shape[2] >= 3:
        order = [2, 1, 0] + list(range(3, arr.shape[2]))  # OpenCV gives BGR(A)
        arr = arr[..., order]
    return arr


def _to_uint8(arr: np.ndarray, path: Path) -> np.ndarray:
    """Scale any supported pixel type to uint8 0..255."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if arr.dtype == np.uint16:
        # round(x * 255 / 65535) == round(x / 257)
        return ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if arr.dtype.kind == "u":
        top = float(np.iinfo(arr.dtype).max)
        return np.rint(arr.astype(np.float64) * (255.0 / top)).astype(np.uint8)
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise DataError(f"{path}: image contains NaN or infinite values; expected finite pixel values")
        # Floats in [0, 1] are the common convention; anything larger is taken as already 0..255.
        scale = 255.0 if arr.size and float(arr.max()) <= 1.0 else 1.0
        return np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8)
    if arr.dtype.kind == "i" and (arr.size == 0 or (int(arr.min()) >= 0 and int(arr.max()) <= 255)):
        return arr.astype(np.uint8)
    raise DataError(
        f"{path}: unsupported pixel type {arr.dtype} (values {arr.min()}..{arr.max()}); "
        "expected 8- or 16-bit unsigned or float in [0, 1]"
    )


def _image_to_rgb(arr: np.ndarray, path: Path) -> np.ndarray:
    if arr.ndim == 2:
        arr = arr[:, :, None]
    channels = arr.shape[2]
    if channels in (1, 2):  # grey or grey + alpha
        arr = np.repeat(arr[:, :, :1], 3, axis=2)
    elif channels in (3, 4):  # RGB or RGBA: alpha is dropped
        arr = arr[:, :, :3]
    else:
        raise DataError(
            f"{path}: image has {channels} channels; expected 1 (grey), 3 (RGB) or 4 (RGBA); "
            "convert it to RGB"
        )
    return np.ascontiguousarray(_to_uint8(arr, path))


def decode_image(data: bytes, path: str | Path) -> np.ndarray:
    """Decode image bytes to (H, W, 3) uint8 RGB; ``path`` is only used in error messages."""
    path = Path(path)
    return _image_to_rgb(_decode_raw(data, path), path)


def decode_mask(data: bytes, path: str | Path) -> np.ndarray:
    """Decode mask bytes to (H, W) uint8 with values {0, 1}; ``path`` is only used in error messages."""
    path = Path(path)
    raw = _decode_raw(data, path)
    if raw.ndim == 3:
        channels = raw.shape[2]
        # Alpha is dropped first: an opaque alpha channel (255 everywhere) would otherwise win the max and
        # turn the whole mask into foreground.
        if channels == 2:
            raw = raw[:, :, :1]
        elif channels == 4:
            raw = raw[:, :, :3]
        raw = raw.max(axis=2)
    # Lossless masks stored as label images {0, 1} would be all background after a >= 128 threshold, which
    # silently destroys the dataset. JPEG is excluded: its noise can put a stray 1 into an empty 0/255 mask.
    is_jpeg = data[:3] == _JPEG_MAGIC
    if not is_jpeg and raw.dtype.kind in "ui" and raw.size and int(raw.max()) == 1 and int(raw.min()) >= 0:
        return (raw > 0).astype(np.uint8)
    return (_to_uint8(raw, path) >= 128).astype(np.uint8)


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB (grey is repeated, alpha dropped, 16-bit scaled)."""
    return decode_image(read_bytes(path), path)


def read_mask(path: str | Path) -> np.ndarray:
    """Read a mask file as (H, W) uint8 {0, 1}: max over colour channels, then binarised at >= 128."""
    return decode_mask(read_bytes(path), path)
