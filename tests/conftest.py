"""Shared fixtures: a small synthetic dataset, the real Kvasir-SEG folder (or a skip), an isolated cache."""

from __future__ import annotations

from pathlib import Path

import pytest

# The real data lives beside the repo (../shared), never inside it.
KVASIR_DIR = Path(__file__).resolve().parents[2] / "shared/data/kvasir-seg"


@pytest.fixture(scope="session")
def _session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hpsearch-cache")


@pytest.fixture(autouse=True)
def _isolated_env(_session_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep tests away from the user's ~/.cache/hpsearch and from a dataset set in their environment."""
    monkeypatch.setenv("HPSEARCH_CACHE", str(_session_cache))
    monkeypatch.delenv("HPSEARCH_DATA", raising=False)


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 synthetic 64x64 pairs (images/*.png, masks/*.png), made once per test session. Do not modify."""
    from hpsearch.data.synth import make_synthetic

    return make_synthetic(tmp_path_factory.mktemp("synth") / "data", n=24, size=64, seed=0)


@pytest.fixture
def kvasir_dir() -> Path:
    """The real Kvasir-SEG folder in ../shared/data/kvasir-seg; the test is skipped when it is absent."""
    if not (KVASIR_DIR / "images").is_dir() or not (KVASIR_DIR / "masks").is_dir():
        pytest.skip(f"real Kvasir-SEG data not found at {KVASIR_DIR}")
    return KVASIR_DIR
