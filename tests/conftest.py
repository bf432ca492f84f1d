"""Shared fixtures: a small synthetic dataset, the real Kvasir-SEG folder (or a skip), an isolated cache, the
CLI runner, a template SQLite database, and storage URLs of every kind the search runs on."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# The real data lives beside the repo (../shared), never inside it.
KVASIR_DIR = Path(__file__).resolve().parents[2] / "shared/data/kvasir-seg"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "subprocess: starts hpsearch processes (runs, workers) and waits for them (slow-ish)"
    )


@pytest.fixture(scope="session")
def _session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hpsearch-cache")


@pytest.fixture(autouse=True)
def _isolated_env(_session_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep tests away from the user's ~/.cache/hpsearch and from settings in their environment."""
    monkeypatch.setenv("HPSEARCH_CACHE", str(_session_cache))
    for var in ("HPSEARCH_DATA", "HPSEARCH_STORAGE", "HPSEARCH_OUT", "HPSEARCH_ARTIFACTS"):
        monkeypatch.delenv(var, raising=False)


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


@pytest.fixture(scope="session")
def invoke() -> Callable[..., Any]:
    """The CLI in this process: ``invoke("run", "--study", "smoke", ...)`` -> click's Result.

    Arguments are turned into strings, so paths and numbers can be passed as they are.
    """
    from typer.testing import CliRunner

    from hpsearch.cli import app

    runner = CliRunner()

    def call(*args: object, **kwargs: Any) -> Any:
        return runner.invoke(app, [str(a) for a in args], **kwargs)

    return call


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty SQLite file with Optuna's schema, made once: copying it costs far less than creating the
    schema. Copy it (``copy_template``); never write to it."""
    import optuna

    db = tmp_path_factory.mktemp("template") / "empty.db"
    optuna.storages.RDBStorage(f"sqlite:///{db}").engine.dispose()
    return db


def copy_template(template: Path, folder: Path, name: str = "study.db") -> str:
    """A private copy of a template database; returns its SQLite URL."""
    db = folder / name
    shutil.copyfile(template, db)
    return f"sqlite:///{db}"


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path, template_db: Path) -> Iterator[str]:
    """A fresh storage URL of each kind: in-memory SQLite (one process), a SQLite file, a PostgreSQL database
    (skipped when the server is not reachable)."""
    yield from _supply(request.param, tmp_path, template_db)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared_storage_url(request: pytest.FixtureRequest, tmp_path: Path, template_db: Path) -> Iterator[str]:
    """A fresh storage URL that several processes can share: a SQLite file, or a PostgreSQL database."""
    yield from _supply(request.param, tmp_path, template_db)


def _supply(kind: str, tmp_path: Path, template: Path) -> Iterator[str]:
    if kind == "memory":
        yield "sqlite:///:memory:"
    elif kind == "sqlite":
        yield copy_template(template, tmp_path)
    else:
        from pg import pg_database

        with pg_database() as url:
            yield url
