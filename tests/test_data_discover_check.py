"""discover_pairs, dataset_fingerprint, check_dataset, verify_dataset and the `hpsearch data check` CLI."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

import hpsearch.data.check as check_mod
from hpsearch.cli import app
from hpsearch.data.check import check_dataset, verify_dataset
from hpsearch.data.discover import dataset_fingerprint, discover_pairs
from hpsearch.data.folder import DATA_ENV, NO_DATA, resolve_data_dir
from hpsearch.data.io import read_mask
from hpsearch.errors import ConfigError, DataError

runner = CliRunner()


def _png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(path.suffix, array)
    assert ok
    path.write_bytes(buf.tobytes())


def _pair(
    root: Path,
    stem: str,
    *,
    size: tuple[int, int] = (48, 64),
    img_ext: str = ".png",
    mask_ext: str = ".png",
    fg: bool = True,
    mask_size: tuple[int, int] | None = None,
    seed: int = 0,
) -> None:
    """Write one pair; ``size`` is (H, W)."""
    rng = np.random.default_rng(seed)
    _png(root / "images" / f"{stem}{img_ext}", rng.integers(0, 256, (*size, 3), dtype=np.uint8))
    mh, mw = mask_size or size
    mask = np.zeros((mh, mw), np.uint8)
    if fg:
        mask[mh // 4 : mh // 2, mw // 4 : mw // 2] = 255
    _png(root / "masks" / f"{stem}{mask_ext}", mask)


@pytest.fixture
def data_copy(synth_data: Path, tmp_path: Path) -> Path:
    """A private copy of the synthetic set that a test may break."""
    return Path(shutil.copytree(synth_data, tmp_path / "data"))


# --------------------------------------------------------------------------- discover


def test_discover_synthetic_pairs_sorted(synth_data: Path) -> None:
    pairs = discover_pairs(synth_data)
    assert [p.stem for p in pairs] == [f"synth_{i:04d}" for i in range(24)]
    assert all(p.image == synth_data / "images" / f"{p.stem}.png" for p in pairs)
    assert all(p.mask == synth_data / "masks" / f"{p.stem}.png" for p in pairs)


def test_discover_matches_by_stem_across_extensions_and_ignores_junk(tmp_path: Path) -> None:
    _pair(tmp_path, "b", img_ext=".jpg", mask_ext=".png")
    _pair(tmp_path, "a", img_ext=".PNG", mask_ext=".bmp")
    (tmp_path / "images" / ".DS_Store").write_bytes(b"junk")
    (tmp_path / "images" / "._a.jpg").write_bytes(b"junk")
    (tmp_path / "masks" / "notes.txt").write_text("not an image")
    (tmp_path / "images" / "sub").mkdir()
    pairs = discover_pairs(tmp_path)
    assert [(p.stem, p.image.name, p.mask.name) for p in pairs] == [
        ("a", "a.PNG", "a.bmp"),
        ("b", "b.jpg", "b.png"),
    ]


def test_duplicate_stem_with_two_extensions_is_an_error(tmp_path: Path) -> None:
    _pair(tmp_path, "x")
    shutil.copy(tmp_path / "images" / "x.png", tmp_path / "images" / "x.jpg")
    with pytest.raises(DataError, match=r"stem 'x' appears more than once \(x.jpg, x.png\)"):
        discover_pairs(tmp_path)


def test_unmatched_stems_named_up_to_five_with_count(tmp_path: Path) -> None:
    for i in range(7):
        _pair(tmp_path, f"s{i}")
    for i in range(7):
        (tmp_path / "masks" / f"s{i}.png").unlink()
    _pair(tmp_path, "ok")
    with pytest.raises(DataError) as info:
        discover_pairs(tmp_path)
    msg = str(info.value)
    assert "7 image(s) without a mask" in msg and "s0, s1, s2, s3, s4" in msg and "s5" not in msg


def test_mask_without_image_is_an_error(tmp_path: Path) -> None:
    _pair(tmp_path, "a")
    _pair(tmp_path, "orphan")
    (tmp_path / "images" / "orphan.png").unlink()
    with pytest.raises(DataError, match="1 mask\\(s\\) without an image.*orphan"):
        discover_pairs(tmp_path)


def test_layout_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist.*hpsearch data synth --out DIR"):
        discover_pairs(tmp_path / "missing")
    (tmp_path / "d" / "images").mkdir(parents=True)
    with pytest.raises(DataError, match="no masks/ sub-folder"):
        discover_pairs(tmp_path / "d")
    (tmp_path / "d" / "masks").mkdir()
    (tmp_path / "d" / "images" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match="images is empty.*readme.txt"):
        discover_pairs(tmp_path / "d")


def test_fingerprint_changes_when_a_file_changes(data_copy: Path) -> None:
    pairs = discover_pairs(data_copy)
    fp = dataset_fingerprint(pairs)
    assert fp == dataset_fingerprint(discover_pairs(data_copy))
    assert len(fp) == 64
    st = pairs[3].mask.stat()
    os.utime(pairs[3].mask, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert dataset_fingerprint(pairs) != fp
    assert dataset_fingerprint(pairs[:-1]) != dataset_fingerprint(pairs)


# --------------------------------------------------------------------------- check


def test_check_synthetic_report(synth_data: Path) -> None:
    report = check_dataset(synth_data, progress=False)
    assert report.ok and report.errors == []
    assert report.n_pairs == 24
    assert report.min_size == (64, 64) and report.max_size == (64, 64)
    n_empty = sum(int(read_mask(p).max() == 0) for p in sorted((synth_data / "masks").iterdir()))
    assert n_empty == 2
    assert len(report.warnings) == 1 and report.warnings[0].startswith(f"{n_empty} empty mask(s)")
    text = report.summary()
    assert (
        "pairs: 24" in text
        and "64x64 .. 64x64" in text
        and text.endswith("OK: 24 pairs passed with 1 warning(s)")
    )


def test_check_size_range_and_problems(tmp_path: Path) -> None:
    _pair(tmp_path, "small", size=(40, 50))
    _pair(tmp_path, "large", size=(70, 90), seed=1)
    _pair(tmp_path, "wide", size=(30, 100), seed=2)
    _pair(tmp_path, "badmask", size=(40, 40), mask_size=(40, 41), seed=3)
    _pair(tmp_path, "dup", size=(40, 50))  # same seed and size as "small": byte-identical image
    ok, buf = cv2.imencode(".jpg", np.zeros((32, 32, 3), np.uint8))
    (tmp_path / "images" / "cut.jpg").write_bytes(buf.tobytes()[:-50])
    _png(tmp_path / "masks" / "cut.png", np.zeros((32, 32), np.uint8))

    report = check_dataset(tmp_path, progress=False)
    assert not report.ok and report.n_pairs == 6
    assert report.min_size == (40, 40) and report.max_size == (90, 70)  # (W, H) by pixel count
    assert report.width_range == (40, 100) and report.height_range == (30, 70)
    assert len(report.errors) == 2
    assert any("badmask.png: mask is 41x40 but its image badmask.png is 40x40" in e for e in report.errors)
    assert any("cut.jpg" in e and "truncated" in e for e in report.errors)
    assert any("dup.png = small.png" in w for w in report.warnings)
    assert any("empty mask" in w and "cut.png" in w for w in report.warnings)
    assert "FAILED: 2 error(s)" in report.summary()


def test_check_reports_unmatched_stems_and_still_checks_the_rest(tmp_path: Path) -> None:
    _pair(tmp_path, "a")
    _pair(tmp_path, "b")
    (tmp_path / "masks" / "b.png").unlink()
    report = check_dataset(tmp_path, progress=False)
    assert report.n_pairs == 1 and not report.ok
    assert len(report.errors) == 1 and "without a mask" in report.errors[0] and "b" in report.errors[0]


def test_verify_dataset_caches_a_passed_check(
    data_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    pairs = verify_dataset(data_copy, progress=False, cache_root=cache)
    assert len(pairs) == 24
    records = list((cache / "checks").glob("*.json"))
    assert len(records) == 1

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("check_dataset ran again for an unchanged dataset")

    monkeypatch.setattr(check_mod, "check_dataset", fail)
    t0 = time.perf_counter()
    assert verify_dataset(data_copy, progress=False, cache_root=cache) == pairs
    assert time.perf_counter() - t0 < 0.5
    monkeypatch.undo()

    # Rewriting a file changes the fingerprint: the broken file is found, not trusted from the cache.
    victim = data_copy / "images" / "synth_0005.png"
    victim.write_bytes(victim.read_bytes()[:100])
    with pytest.raises(DataError, match="synth_0005.png") as info:
        verify_dataset(data_copy, progress=False, cache_root=cache)
    assert "\n" not in str(info.value)


def test_verify_uses_hpsearch_cache_env(
    synth_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HPSEARCH_CACHE", str(tmp_path / "envcache"))
    verify_dataset(synth_data, progress=False)
    assert len(list((tmp_path / "envcache" / "checks").glob("*.json"))) == 1


@pytest.mark.slow  # decodes all 2000 real files (a few seconds)
def test_real_kvasir_check(kvasir_dir: Path) -> None:
    report = check_dataset(kvasir_dir, progress=False)
    assert report.ok, report.errors[:3]
    assert report.n_pairs == 1000
    assert report.min_size == (332, 487) and report.max_size == (1920, 1072)
    assert report.width_range == (332, 1920) and report.height_range == (352, 1072)
    assert report.n_distinct_sizes == 333
    assert report.warnings == []


# --------------------------------------------------------------------------- CLI


def _assert_one_line_failure(result, name: str) -> None:
    assert result.exit_code != 0, result.output
    assert name in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    error_lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and name in error_lines[0], result.output


def test_cli_check_ok(synth_data: Path) -> None:
    result = runner.invoke(app, ["data", "check", "--data", str(synth_data)])
    assert result.exit_code == 0, result.output
    assert "pairs: 24" in result.output and "OK: 24 pairs passed" in result.output


def test_cli_check_reads_hpsearch_data_env(synth_data: Path) -> None:
    result = runner.invoke(app, ["data", "check"], env={"HPSEARCH_DATA": str(synth_data)})
    assert result.exit_code == 0, result.output
    assert "pairs: 24" in result.output


def test_cli_check_without_data_explains() -> None:
    result = runner.invoke(app, ["data", "check"])
    assert result.exit_code == 1
    assert "no dataset given" in result.output and "HPSEARCH_DATA" in result.output


def test_resolve_data_dir_takes_the_first_value_given_and_never_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "from-env"))
    with pytest.raises(ConfigError, match="no dataset given: pass --data DIR or set HPSEARCH_DATA") as err:
        resolve_data_dir(None, "  ")  # blank is not given
    assert str(err.value) == NO_DATA and "hpsearch data download --out DIR" in NO_DATA
    assert resolve_data_dir(None, tmp_path / "config") == tmp_path / "config"
    assert resolve_data_dir(tmp_path / "cli", str(tmp_path / "config")) == tmp_path / "cli"
    assert resolve_data_dir("~/kvasir") == (Path.home() / "kvasir").resolve()
    assert resolve_data_dir(None, otherwise=lambda: tmp_path / "synthetic") == tmp_path / "synthetic"
    assert resolve_data_dir(tmp_path / "cli", otherwise=lambda: tmp_path / "synthetic") == tmp_path / "cli"


def test_cli_truncated_jpeg(data_copy: Path) -> None:
    image = data_copy / "images" / "synth_0003.png"
    ok, buf = cv2.imencode(".jpg", cv2.imread(str(image)))
    image.unlink()
    (data_copy / "images" / "synth_0003.jpg").write_bytes(buf.tobytes()[: len(buf) // 2])
    result = runner.invoke(app, ["data", "check", "--data", str(data_copy)])
    _assert_one_line_failure(result, "synth_0003.jpg")
    assert result.exit_code == 1 and "truncated" in result.output


def test_cli_missing_mask(data_copy: Path) -> None:
    (data_copy / "masks" / "synth_0010.png").unlink()
    result = runner.invoke(app, ["data", "check", "--data", str(data_copy)])
    _assert_one_line_failure(result, "synth_0010")


def test_cli_mask_of_wrong_size(data_copy: Path) -> None:
    _png(data_copy / "masks" / "synth_0002.png", np.zeros((64, 60), np.uint8))
    result = runner.invoke(app, ["data", "check", "--data", str(data_copy)])
    _assert_one_line_failure(result, "synth_0002.png")
    assert "60x64" in result.output


def test_cli_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty" / "images").mkdir(parents=True)
    (tmp_path / "empty" / "masks").mkdir(parents=True)
    result = runner.invoke(app, ["data", "check", "--data", str(tmp_path / "empty")])
    _assert_one_line_failure(result, "empty")
    assert result.exit_code == 1


def test_cli_nonexistent_folder(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "check", "--data", str(tmp_path / "no_such_dir")])
    _assert_one_line_failure(result, "no_such_dir")
    assert "hpsearch data download" in result.output
