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
    """The lr_batch study, with its length and batch size fixed small, runs one real trial.

    A sampled value cannot be capped or overridden (the trial would store a value it never trained with), so
    the study file is copied with ``train.batch_size`` moved from ``space`` to ``fixed`` and its top length
    (``train.epochs``, not sampled: the pruner's resource) set to 1.
    """
    study = yaml.safe_load((REPO / "studies/lr_batch.yaml").read_text())
    for key, value in {"epochs": 1, "batch_size": 4}.items():
        study["space"].pop(f"train.{key}", None)
        study["fixed"]["train"][key] = value
    study_file = tmp_path / "lr_batch_1epoch.yaml"
    study_file.write_text(yaml.safe_dump(study))
    storage = f"sqlite:///{tmp_path}/real.db"
    overrides = {"data.max_train_images": 8, "data.max_val_images": 4}
    args = ["run", "--study", str(study_file), "--data", str(kvasir_dir), "--storage", storage]
    args += ["--n-trials", "1", "--out", str(tmp_path / "runs")]
    for key, value in overrides.items():
        args += ["--set", f"{key}={value}"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    (trial,) = optuna.load_study(study_name="lr_batch", storage=storage).trials
    assert trial.state == optuna.trial.TrialState.COMPLETE
    # The stored config is the study's fixed part, the sampled values and the overrides, as given.
    cfg = trial.user_attrs["config"]
    for section, values in study["fixed"].items():
        assert {k: cfg[section][k] for k in values} == values, section
    for dotted, value in {**trial.params, **overrides}.items():
        section, key = dotted.split(".")
        assert cfg[section][key] == value, dotted
    assert trial.user_attrs["manifest"]["n_params"] == 31_037_633  # the paper's U-Net at base width 64


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
