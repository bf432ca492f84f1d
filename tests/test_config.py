"""Run-config validation: unknown keys, wrong types and YAML errors name the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpsearch.errors import ConfigError
from hpsearch.training.config import RunConfig, config_differences, dump_config, load_config

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "run.yaml"
    p.write_text(text)
    return p


def test_shipped_baseline_config_is_the_reports_recipe() -> None:
    cfg = load_config(REPO / "configs/report_baseline.yaml")
    assert (cfg.train.optimizer, cfg.train.lr, cfg.train.batch_size, cfg.train.epochs) == (
        "adam",
        1e-3,
        8,
        25,
    )
    assert (cfg.train.loss, cfg.data.image_size, cfg.model.name) == ("bce", 256, "unet")


@pytest.mark.parametrize(
    ("text", "field", "what"),
    [
        ("train: {lrr: 0.1}", "train.lrr", "unknown key"),
        ("train: {epochs: many}", "train.epochs", "integer"),
        ("train: {lr: -1}", "train.lr", "greater than 0"),
        ("data: {image_size: 8}", "data.image_size", "greater than or equal"),
        ("model: {name: unet, kwarg: {}}", "model.kwarg", "unknown key"),
        ("train: {epochs: 3, warmup_epochs: 3}", "train", "warmup_epochs"),
    ],
)
def test_bad_config_names_file_and_field(tmp_path: Path, text: str, field: str, what: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(p)
    msg = str(err.value)
    assert str(p) in msg and f"'{field}'" in msg and what in msg
    assert "\n" not in msg


def test_yaml_syntax_error_gives_line(tmp_path: Path) -> None:
    p = write(tmp_path, "train:\n  lr: [1, 2\n")
    with pytest.raises(ConfigError, match=r"YAML syntax error at line \d+"):
        load_config(p)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_dump_load_round_trip(tmp_path: Path, fmt: str) -> None:
    cfg = RunConfig.model_validate(
        {
            "train": {"lr": 3e-4, "scheduler": "cosine", "warmup_epochs": 2, "loss_kwargs": {"alpha": 0.3}},
            "model": {"name": "cbam_unet", "kwargs": {"base_width": 8}},
            "provenance": {"trial": 3},
        }
    )
    back = load_config(dump_config(cfg, tmp_path / f"c.{fmt}", fmt=fmt))  # type: ignore[arg-type]
    assert back == cfg


@pytest.mark.parametrize(
    ("word", "expected"), [("off", "off"), ("on", "on"), ("auto", "auto"), ("no", "off")]
)
def test_compile_accepts_yaml_1_1_booleans(tmp_path: Path, word: str, expected: str) -> None:
    """YAML reads a bare `off` as False; the field must still mean 'off', in a file and in --set."""
    p = tmp_path / "c.yaml"
    p.write_text(f"train:\n  compile: {word}\n")
    assert load_config(p).train.compile == expected
    from hpsearch.search.options import parse_overrides
    from hpsearch.training.config import resolve_run_config

    cfg = resolve_run_config({}, overrides=parse_overrides([f"train.compile={word}"]), source="--set")
    assert cfg.train.compile == expected


def test_compile_rejects_other_words(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  compile: sometimes\n")
    with pytest.raises(ConfigError, match="compile"):
        load_config(p)


def test_config_differences_pair_the_values_and_leave_out_what_is_skipped() -> None:
    a = {"train": {"lr": 0.01, "seed": 1}, "model": {"kwargs": {"depth": 5}}, "provenance": {"trial": 3}}
    b = {"train": {"lr": 0.001, "seed": 2}, "model": {"kwargs": {}}, "provenance": {}}
    assert config_differences(a, b, skip=("train.seed", "provenance")) == {
        "model.kwargs": (None, {}),
        "model.kwargs.depth": (5, None),
        "train.lr": (0.01, 0.001),
    }
    # ``skip`` takes whole path segments: ``train.s`` skips nothing under ``train.seed``.
    assert "train.seed" in config_differences(a, b, skip=("train.s",))
    # ``missing`` stands for an absent path, so a None can differ from no value at all.
    absent = object()
    assert config_differences({"x": None}, {}) == {}
    assert config_differences({"x": None}, {}, missing=absent) == {"x": (None, absent)}
