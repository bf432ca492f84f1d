"""read_image / read_mask: formats, channel layouts, bit depths and broken files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from hpsearch.data.io import jpeg_is_complete, read_image, read_mask
from hpsearch.errors import DataError


def _rgb(seed: int = 0, size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)


def _write(path: Path, array: np.ndarray, ext: str | None = None) -> Path:
    """Encode with OpenCV (expects BGR for colour) and write the bytes."""
    ok, buf = cv2.imencode(ext or path.suffix, array)
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def _smooth_rgb(size: int = 64) -> np.ndarray:
    """A gradient image that survives JPEG nearly unchanged (so values can be compared loosely)."""
    y, x = np.mgrid[0:size, 0:size]
    return np.stack([x * 4 % 256, y * 4 % 256, np.full_like(x, 90)], axis=-1).astype(np.uint8)


@pytest.mark.parametrize("ext", [".png", ".bmp"])
def test_lossless_colour_is_rgb_and_exact(tmp_path: Path, ext: str) -> None:
    rgb = _rgb()
    path = _write(tmp_path / f"a{ext}", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == (64, 64, 3)
    np.testing.assert_array_equal(out, rgb)


def test_pure_red_png_reads_as_red_not_blue(tmp_path: Path) -> None:
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255  # RGB red
    out = read_image(_write(tmp_path / "r.png", cv2.cvtColor(red, cv2.COLOR_RGB2BGR)))
    assert out[0, 0].tolist() == [255, 0, 0]


def test_jpeg_reads_close_to_original(tmp_path: Path) -> None:
    rgb = _smooth_rgb()
    path = _write(tmp_path / "a.jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    out = read_image(path)
    assert out.shape == (64, 64, 3)
    assert np.abs(out.astype(int) - rgb.astype(int)).mean() < 4


def test_grey_image_becomes_three_equal_channels(tmp_path: Path) -> None:
    grey = _rgb()[..., 0]
    out = read_image(_write(tmp_path / "g.png", grey))
    assert out.shape == (64, 64, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], grey)


def test_rgba_png_drops_alpha(tmp_path: Path) -> None:
    rgb = _rgb()
    alpha = np.full((64, 64, 1), 7, np.uint8)
    bgra = np.concatenate([cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), alpha], axis=2)
    np.testing.assert_array_equal(read_image(_write(tmp_path / "a.png", bgra)), rgb)


def test_sixteen_bit_png_is_scaled_to_uint8(tmp_path: Path) -> None:
    grey16 = np.array([[0, 257 * 100, 65535, 257 * 200]], np.uint16)
    out = read_image(_write(tmp_path / "d.png", grey16))
    assert out[0, :, 0].tolist() == [0, 100, 255, 200]


def test_tiff_four_channel_uint16(tmp_path: Path) -> None:
    rgb = _rgb()
    rgba16 = np.concatenate([rgb, np.full((64, 64, 1), 255, np.uint8)], axis=2).astype(np.uint16) * 257
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, rgba16)
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == (64, 64, 3)
    np.testing.assert_array_equal(out, rgb)


def test_tiff_planar_channels_first(tmp_path: Path) -> None:
    rgb = _rgb(1)
    planar = np.ascontiguousarray(np.moveaxis(rgb, -1, 0))  # (3, H, W)
    sep = tmp_path / "sep.tiff"
    tifffile.imwrite(sep, planar, photometric="rgb", planarconfig="separate")
    np.testing.assert_array_equal(read_image(sep), rgb)
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, planar, photometric="minisblack")  # three grey planes, channels first
    np.testing.assert_array_equal(read_image(plain), rgb)


def test_float_tiff_in_unit_range(tmp_path: Path) -> None:
    path = tmp_path / "f.tif"
    tifffile.imwrite(path, np.array([[0.0, 0.5, 1.0]], np.float32))
    assert read_image(path)[0, :, 0].tolist() == [0, 128, 255]


def test_png_with_jpg_extension_is_read_by_content(tmp_path: Path) -> None:
    rgb = _rgb()
    path = _write(tmp_path / "wrong.jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), ext=".png")
    np.testing.assert_array_equal(read_image(path), rgb)


@pytest.mark.parametrize("cut", [2, 100, "half"])
def test_truncated_jpeg_raises_naming_the_file(tmp_path: Path, cut: int | str) -> None:
    ok, buf = cv2.imencode(".jpg", _rgb())
    data = buf.tobytes()
    n = len(data) // 2 if cut == "half" else len(data) - int(cut)
    path = tmp_path / "broken_one.jpg"
    path.write_bytes(data[:n])
    assert not jpeg_is_complete(data[:n])
    with pytest.raises(DataError, match="broken_one.jpg.*truncated"):
        read_image(path)


def test_jpeg_with_trailer_after_end_marker_is_complete(tmp_path: Path) -> None:
    ok, buf = cv2.imencode(".jpg", _smooth_rgb())
    data = buf.tobytes() + b"TRAILER-METADATA" + b"\x00" * 8
    assert jpeg_is_complete(data)
    path = tmp_path / "t.jpg"
    path.write_bytes(data)
    assert read_image(path).shape == (64, 64, 3)


def test_truncated_png_and_garbage_and_empty_raise(tmp_path: Path) -> None:
    ok, buf = cv2.imencode(".png", _rgb())
    half = tmp_path / "half.png"
    half.write_bytes(buf.tobytes()[: len(buf) // 2])
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"this is not an image at all" * 10)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    for path in (half, garbage, empty):
        with pytest.raises(DataError) as info:
            read_image(path)
        assert path.name in str(info.value) and "\n" not in str(info.value)


def test_truncated_tiff_raises(tmp_path: Path) -> None:
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, _rgb())
    path.write_bytes(path.read_bytes()[:-500])
    with pytest.raises(DataError, match="cut.tif"):
        read_image(path)


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nope.png.*not found"):
        read_mask(tmp_path / "nope.png")


def test_mask_binarised_at_128(tmp_path: Path) -> None:
    grey = np.array([[0, 127, 128, 255, 9, 246]], np.uint8)
    out = read_mask(_write(tmp_path / "m.png", grey))
    assert out.dtype == np.uint8
    assert out.tolist() == [[0, 0, 1, 1, 0, 1]]


def test_mask_colour_uses_max_over_channels(tmp_path: Path) -> None:
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)  # pure red: grey conversion would give 76 and lose it
    rgb[1, 1] = (0, 0, 200)
    out = read_mask(_write(tmp_path / "m.png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)))
    assert out.tolist() == [[1, 0], [0, 1]]


def test_mask_opaque_alpha_is_ignored(tmp_path: Path) -> None:
    bgra = np.zeros((4, 4, 4), np.uint8)
    bgra[..., 3] = 255
    bgra[0, 0, :3] = 255
    out = read_mask(_write(tmp_path / "m.png", bgra))
    assert int(out.sum()) == 1 and out[0, 0] == 1


def test_mask_label_png_zero_one_kept(tmp_path: Path) -> None:
    labels = np.zeros((4, 4), np.uint8)
    labels[1:3, 1:3] = 1
    np.testing.assert_array_equal(read_mask(_write(tmp_path / "m.png", labels)), labels)


def test_mask_jpeg_noise_and_16bit_tiff(tmp_path: Path) -> None:
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 20:40] = 255
    out = read_mask(_write(tmp_path / "m.jpg", mask))
    assert (out == (mask > 0)).mean() > 0.99 and set(np.unique(out).tolist()) == {0, 1}
    tif = tmp_path / "m.tif"
    tifffile.imwrite(tif, mask.astype(np.uint16) * 257)
    np.testing.assert_array_equal(read_mask(tif), (mask > 0).astype(np.uint8))


def test_real_kvasir_pair_decodes(kvasir_dir: Path) -> None:
    image_path = sorted((kvasir_dir / "images").glob("*.jpg"))[0]
    image = read_image(image_path)
    mask = read_mask(kvasir_dir / "masks" / image_path.name)
    assert image.ndim == 3 and image.shape[2] == 3 and image.shape[:2] == mask.shape
    assert set(np.unique(mask).tolist()) == {0, 1}
