"""make_synthetic and download_dataset (against a real local HTTP server, no internet)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import socket
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from hpsearch.cli import app
from hpsearch.data.check import check_dataset
from hpsearch.data.discover import discover_pairs
from hpsearch.data.download import download_dataset
from hpsearch.data.io import read_image, read_mask
from hpsearch.data.synth import make_synthetic
from hpsearch.errors import DataError

# --------------------------------------------------------------------------- synth


def _arrays(folder: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(read_image(p.image), read_mask(p.mask)) for p in discover_pairs(folder)]


def test_synth_layout_and_empty_fraction(tmp_path: Path) -> None:
    out = make_synthetic(tmp_path / "s", n=20, size=48, seed=3)
    pairs = discover_pairs(out)
    assert [p.stem for p in pairs] == [f"synth_{i:04d}" for i in range(20)]
    data = _arrays(out)
    assert all(img.shape == (48, 48, 3) and m.shape == (48, 48) for img, m in data)
    assert sum(int(m.max() == 0) for _, m in data) == 2  # 10% of 20
    fractions = [m.mean() for _, m in data if m.max() > 0]
    assert min(fractions) > 0.005 and max(fractions) < 0.6 and max(fractions) > 2 * min(fractions)


def test_synth_is_deterministic(tmp_path: Path) -> None:
    a = make_synthetic(tmp_path / "a", n=6, size=32, seed=1)
    b = make_synthetic(tmp_path / "b", n=6, size=32, seed=1)
    c = make_synthetic(tmp_path / "c", n=6, size=32, seed=2)
    for (ia, ma), (ib, mb) in zip(_arrays(a), _arrays(b), strict=True):
        assert ia.tobytes() == ib.tobytes() and ma.tobytes() == mb.tobytes()
    assert any(not np.array_equal(ia, ic) for (ia, _), (ic, _) in zip(_arrays(a), _arrays(c), strict=True))


def test_synth_blobs_are_learnable_by_colour(synth_data: Path) -> None:
    """The polyp-like blobs must stand out from the background (a tiny model has to learn them quickly)."""
    data = _arrays(synth_data)
    pixels = np.concatenate([img.reshape(-1, 3) for img, _ in data]).astype(float)
    labels = np.concatenate([m.reshape(-1) for _, m in data]).astype(bool)
    gap = pixels[labels].mean(0) - pixels[~labels].mean(0)
    assert gap[1] > 40  # green channel: blobs are much lighter/more orange than the red mucosa
    # Even a single threshold on green separates them well; a model can do better.
    predicted = pixels[:, 1] > (pixels[labels, 1].mean() + pixels[~labels, 1].mean()) / 2
    inter = (predicted & labels).sum()
    assert 2 * inter / (predicted.sum() + labels.sum()) > 0.6


def test_synth_replaces_an_earlier_synth_but_not_other_files(tmp_path: Path) -> None:
    make_synthetic(tmp_path / "s", n=10, size=32)
    make_synthetic(tmp_path / "s", n=4, size=32)
    assert len(discover_pairs(tmp_path / "s")) == 4
    (tmp_path / "s" / "images" / "mine.jpg").write_bytes(b"user file")
    with pytest.raises(DataError, match="already holds other files \\(mine.jpg\\)"):
        make_synthetic(tmp_path / "s", n=4, size=32)
    assert (tmp_path / "s" / "images" / "mine.jpg").exists()


def test_cli_synth(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["data", "synth", "--out", str(tmp_path / "d"), "--n", "5", "--size", "32"]
    )
    assert result.exit_code == 0, result.output
    assert "wrote 5 synthetic pairs" in result.output
    assert check_dataset(tmp_path / "d", progress=False).n_pairs == 5


# --------------------------------------------------------------------------- download


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - signature of the base class
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(base URL, folder it serves) for a ThreadingHTTPServer on 127.0.0.1 with an ephemeral port."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _zip_dataset(
    source: Path, archive: Path, top: str = "Kvasir-SEG", extra: dict[str, bytes] | None = None
) -> str:
    """Zip ``source`` as ``top/images/...``, ``top/masks/...`` (like the official archive); return sha256."""
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(source.rglob("*")):
            if path.is_file():
                zf.write(path, f"{top}/{path.relative_to(source).as_posix()}")
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return hashlib.sha256(archive.read_bytes()).hexdigest()


@pytest.fixture
def small_synth(tmp_path: Path) -> Path:
    return make_synthetic(tmp_path / "src", n=6, size=32, seed=0)


def test_download_good_checksum(served: tuple[str, Path], small_synth: Path, tmp_path: Path) -> None:
    base, root = served
    digest = _zip_dataset(small_synth, root / "kvasir-seg.zip")
    messages: list[str] = []
    path = download_dataset(
        tmp_path / "out", url=f"{base}/kvasir-seg.zip", sha256=digest, log=messages.append
    )
    assert path == tmp_path / "out" / "Kvasir-SEG"
    assert check_dataset(path, progress=False).n_pairs == 6
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["Kvasir-SEG"]  # no zip or temp left
    assert messages == [f"dataset ready: {path} (6 pairs)"]


def test_download_unpinned_prints_the_hash(
    served: tuple[str, Path], small_synth: Path, tmp_path: Path
) -> None:
    base, root = served
    digest = _zip_dataset(small_synth, root / "d.zip", top="nested/deeper")
    messages: list[str] = []
    path = download_dataset(tmp_path / "out", url=f"{base}/d.zip", sha256=None, log=messages.append)
    assert path.name == "deeper" and len(discover_pairs(path)) == 6
    assert digest in messages[0] and "not pinned" in messages[0]


def test_download_wrong_checksum_leaves_nothing(
    served: tuple[str, Path], small_synth: Path, tmp_path: Path
) -> None:
    base, root = served
    digest = _zip_dataset(small_synth, root / "k.zip")
    with pytest.raises(DataError) as info:
        download_dataset(tmp_path / "out", url=f"{base}/k.zip", sha256="0" * 64, log=lambda _m: None)
    msg = str(info.value)
    assert f"expected sha256 {'0' * 64}, got {digest}" in msg and "\n" not in msg
    assert list((tmp_path / "out").iterdir()) == []


def test_download_unreachable_and_missing(served: tuple[str, Path], tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/kvasir-seg.zip"
    with pytest.raises(DataError, match=f"could not download {url}") as info:
        download_dataset(tmp_path / "out", url=url, timeout=5, log=lambda _m: None)
    assert "\n" not in str(info.value)
    base, _ = served
    with pytest.raises(DataError, match="HTTP 404"):
        download_dataset(tmp_path / "out", url=f"{base}/missing.zip", log=lambda _m: None)
    assert list((tmp_path / "out").iterdir()) == []


def test_download_refuses_paths_outside_out_dir(
    served: tuple[str, Path], small_synth: Path, tmp_path: Path
) -> None:
    base, root = served
    _zip_dataset(small_synth, root / "evil.zip", extra={"../../escaped.txt": b"gotcha"})
    out = tmp_path / "a" / "out"
    with pytest.raises(DataError, match="refusing to unpack '../../escaped.txt'"):
        download_dataset(out, url=f"{base}/evil.zip", log=lambda _m: None)
    assert not list(tmp_path.rglob("escaped.txt"))
    assert list(out.iterdir()) == []


def test_download_not_a_dataset(served: tuple[str, Path], tmp_path: Path) -> None:
    base, root = served
    with zipfile.ZipFile(root / "other.zip", "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(DataError, match="no folder with both images/ and masks/"):
        download_dataset(tmp_path / "out", url=f"{base}/other.zip", log=lambda _m: None)


def test_cli_download(served: tuple[str, Path], small_synth: Path, tmp_path: Path) -> None:
    base, root = served
    digest = _zip_dataset(small_synth, root / "k.zip")
    args = ["data", "download", "--out", str(tmp_path / "out"), "--url", f"{base}/k.zip"]
    result = CliRunner().invoke(app, [*args, "--sha256", digest])
    assert result.exit_code == 0, result.output
    assert "dataset ready" in result.output and "Kvasir-SEG" in result.output
    bad = CliRunner().invoke(
        app, [*args[:2], "--out", str(tmp_path / "out2"), *args[4:], "--sha256", "1" * 64]
    )
    assert bad.exit_code == 1 and "checksum mismatch" in bad.output and "Traceback" not in bad.output
