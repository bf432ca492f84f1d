"""The real path on real Kvasir-SEG (skipped when absent; the slow cases run with -m slow)."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import yaml
from typer.testing import CliRunner

from hpsearch.cli import app

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_lr_batch_starts_a_real_trial_on_real_data(kvasir_dir: Path, tmp_path: Path) -> None:
    """`hpsearch run --study lr_batch --n-trials 1` on real data, shortened by override flags (CPU)."""
    storage = f"sqlite:///{tmp_path}/real.db"
    args = [
        "run",
        "--study",
        "lr_batch",
        "--data",
        str(kvasir_dir),
        "--storage",
        storage,
        "--n-trials",
        "1",
        "--max-epochs",
        "1",
        "--set",
        "data.max_train_images=8",
        "--set",
        "data.max_val_images=4",
        "--set",
        "train.batch_size=4",
        "--out",
        str(tmp_path / "runs"),
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    (trial,) = optuna.load_study(study_name="lr_batch", storage=storage).trials
    assert trial.state == optuna.trial.TrialState.COMPLETE
    cfg = trial.user_attrs["config"]
    assert cfg["model"]["name"] == "unet" and cfg["data"]["image_size"] == 256
    assert cfg["data"]["split_file"] == "kvasir-official"
    assert trial.user_attrs["manifest"]["n_params"] == 31_037_633


@pytest.mark.slow
def test_real_unet_one_epoch_on_a_handful_of_real_images(kvasir_dir: Path, tmp_path: Path) -> None:
    """The real 31M U-Net trains one epoch on a few real images at 256² on the CPU."""
    cfg = yaml.safe_load((REPO / "configs/report_baseline.yaml").read_text())
    cfg["train"].update(epochs=1, batch_size=4)
    cfg["data"].update(max_train_images=8, max_val_images=4)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "t"
    res = runner.invoke(app, ["train", "--config", str(path), "--data", str(kvasir_dir), "--out", str(out)])
    assert res.exit_code == 0, res.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["epochs_run"] == 1 and m["manifest"]["n_train"] == 8 and m["manifest"]["n_params"] == 31_037_633
    assert (out / "best.pt").stat().st_size > 100e6  # 31M float32 weights
