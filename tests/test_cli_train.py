"""`hpsearch train` / `hpsearch evaluate` from the command line, as a new user would type them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from hpsearch.cli import app

runner = CliRunner()

TINY = {
    "data": {"image_size": 64, "augmentation": "basic", "val_fraction": 0.25, "test_fraction": 0.15},
    "model": {"name": "cbam_unet", "kwargs": {"base_width": 8, "depth": 2}},
    "train": {"epochs": 2, "batch_size": 4, "lr": 1e-2, "loss": "bce_dice", "device": "cpu"},
}


def test_config_in_metrics_json_reproduces_the_run(synth_data: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    first = runner.invoke(
        app, ["train", "--config", str(cfg), "--data", str(synth_data), "--out", str(tmp_path / "a")]
    )
    assert first.exit_code == 0, first.output
    a = json.loads((tmp_path / "a/metrics.json").read_text())
    again = tmp_path / "again.yaml"
    again.write_text(yaml.safe_dump(a["config"]))  # the resolved config, data path included
    second = runner.invoke(app, ["train", "--config", str(again), "--out", str(tmp_path / "b")])
    assert second.exit_code == 0, second.output
    b = json.loads((tmp_path / "b/metrics.json").read_text())
    assert [h["val_dice"] for h in a["history"]] == [h["val_dice"] for h in b["history"]]
    assert a["config"] == b["config"]

    res = runner.invoke(
        app,
        [
            "evaluate",
            "--checkpoint",
            str(tmp_path / "a/best.pt"),
            "--out",
            str(tmp_path / "e"),
            "--split",
            "all",
            "--k",
            "3",
        ],
    )
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "e/metrics.json").read_text())
    assert m["n"] == 24 and m["split"] == "all" and m["iou_mean"] <= m["dice_mean"]


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"train": {"lrate": 0.1}}, "train.lrate"),
        ({"train": {"epochs": "ten"}}, "train.epochs"),
        ({"model": {"name": "transformer"}}, "model.name"),
        ({"train": {"loss": "hinge"}}, "train.loss"),
        ({"data": {"augmentation": "extreme"}}, "data.augmentation"),
        ({"model": {"name": "unet", "kwargs": {"depth": 0}}}, "model.kwargs"),
    ],
)
def test_bad_config_is_one_line_naming_the_field(tmp_path: Path, patch: dict, field: str) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump(patch))
    res = runner.invoke(app, ["train", "--config", str(cfg), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert f"'{field}'" in text and "Traceback" not in res.output
    assert not (tmp_path / "o").exists()


def test_evaluate_missing_checkpoint_is_one_line(tmp_path: Path) -> None:
    res = runner.invoke(app, ["evaluate", "--checkpoint", str(tmp_path / "nope.pt")])
    assert res.exit_code == 2 and "does not exist" in res.output
