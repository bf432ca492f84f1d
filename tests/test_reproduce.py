"""``hpsearch reproduce``: the four columns end to end (quick, synthetic), its sanity checks, its configs."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from typer.testing import CliRunner

from hpsearch.cli import app
from hpsearch.reproduce.run import (
    COLUMNS,
    SanityError,
    apply_overrides,
    check_iou_le_dice,
    check_no_leakage,
    check_same_test_set,
    claim_check,
    default_config_dir,
    leakage_warning,
    load_column_configs,
    parse_columns,
    quick_config,
    reproduce,
    warn_if_suspicious,
)
from hpsearch.training.config import load_config

runner = CliRunner()
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory, synth_data: Path) -> tuple[Path, object]:
    """All four columns, quick mode, on the synthetic set (no official split there: random split)."""
    root = tmp_path_factory.mktemp("reproduce")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HPSEARCH_CACHE", str(root / "cache"))
        mp.delenv("HPSEARCH_DATA", raising=False)
        res = invoke("reproduce", "--quick", "--data", synth_data, "--out", root / "out", "--device", "cpu")
    return root / "out", res


def test_quick_run_writes_every_column_and_the_results(quick_run: tuple[Path, object]) -> None:
    out, res = quick_run
    assert res.exit_code == 0, res.output
    results = json.loads((out / "results.json").read_text())
    assert results["kind"] == "quick"
    assert results["n_seeds"] == 1
    assert "CPU" in results["hardware"]
    assert list(results["columns"]) == list(COLUMNS)
    for key, col in results["columns"].items():
        assert col["iou_mean"] <= col["dice_mean"], key
        assert 0.0 <= col["iou_mean"] <= 1.0
        assert col["n_seeds"] == 1 and len(col["runs"]) == 1
        assert col["dice_sd"] is None  # one seed: no spread over seeds is claimed
        assert col["hardware"] and col["wall_time_s"] > 0
        assert (out / key / "worst.png").stat().st_size > 0
        assert (out / key / "seed0" / "curves.png").stat().st_size > 0
        assert load_config(out / key / "config.yaml").data.image_size == 64
    # The quick models keep their identity: a CBAM model in column 4, a bigger one in column 2.
    cols = results["columns"]
    assert cols["cbam"]["model"] == "cbam_unet" and cols["tuned"]["model"] == "unet"
    assert cols["wide_deep"]["n_params"] > cols["unet"]["n_params"]
    md = (out / "results.md").read_text()
    assert "QUICK RUN: not a result" in md
    assert "seeded random split" in md  # synthetic stems do not fit kvasir-official
    assert "| IoU (report's claim) | 0.68 | 0.60 | 0.75 | 0.81 |" in md
    assert "| Dice (report's claim) | 0.71 | 0.71 | 0.78 | 0.85 |" in md
    assert "hpsearch train --config" in md and "hpsearch evaluate --checkpoint" in md
    assert "IoU (this run)" in res.output


def test_quick_run_tests_only_sealed_stems(quick_run: tuple[Path, object]) -> None:
    out, _ = quick_run
    split = json.loads((out / "split.json").read_text())
    assert not set(split["test"]) & (set(split["train"]) | set(split["val"]))
    for key in COLUMNS:
        with (out / key / "seed0" / "test" / "per_case.csv").open() as fh:
            stems = [row["stem"] for row in csv.DictReader(fh)]
        assert sorted(stems) == sorted(split["test"])
        metrics = json.loads((out / key / "seed0" / "metrics.json").read_text())
        assert metrics["manifest"]["split_hash"] == split["hash"]


def test_a_column_reruns_alone_from_its_config(
    quick_run: tuple[Path, object], synth_data: Path, tmp_path: Path
) -> None:
    """`hpsearch train --config <column>/config.yaml` + `hpsearch evaluate` give the column's test Dice."""
    out, _ = quick_run
    res = invoke("train", "--config", out / "unet" / "config.yaml", "--data", synth_data, "--out", tmp_path)
    assert res.exit_code == 0, res.output
    ckpt = tmp_path / "best.pt"
    res = invoke("evaluate", "--checkpoint", ckpt, "--data", synth_data, "--out", tmp_path / "t")
    assert res.exit_code == 0, res.output
    alone = json.loads((tmp_path / "t" / "metrics.json").read_text())
    col = json.loads((out / "results.json").read_text())["columns"]["unet"]
    assert alone["dice_mean"] == pytest.approx(col["dice_mean"], abs=1e-6)
    assert alone["n"] == col["runs"][0]["n_test"]


def test_seeds_change_only_the_training_seed(tmp_path: Path, synth_data: Path) -> None:
    res = invoke(
        "reproduce", "--quick", "--data", synth_data, "--out", tmp_path, "--columns", "unet",
        "--seeds", 2, "--epochs", 1, "--device", "cpu",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    col = json.loads((tmp_path / "results.json").read_text())["columns"]["unet"]
    assert [r["seed"] for r in col["runs"]] == [0, 1] and col["n_seeds"] == 2
    assert col["dice_sd"] is not None and col["iou_mean"] <= col["dice_mean"]
    cfgs = [json.loads((tmp_path / "unet" / f"seed{s}" / "metrics.json").read_text()) for s in (0, 1)]
    assert cfgs[0]["manifest"]["split_hash"] == cfgs[1]["manifest"]["split_hash"]
    assert cfgs[0]["config"]["train"]["seed"] == 0 and cfgs[1]["config"]["train"]["seed"] == 1
    for c in cfgs:
        c["config"]["train"].pop("seed")
    assert cfgs[0]["config"] == cfgs[1]["config"]
    assert "± " in (tmp_path / "results.md").read_text()


def test_full_mode_refuses_data_the_split_was_not_made_for(tmp_path: Path, synth_data: Path) -> None:
    res = invoke("reproduce", "--data", synth_data, "--out", tmp_path / "out", "--columns", "unet")
    assert res.exit_code == 2
    assert "--quick" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "out" / "unet").exists()


def test_unknown_column_is_one_line(tmp_path: Path, synth_data: Path) -> None:
    res = invoke("reproduce", "--quick", "--data", synth_data, "--out", tmp_path, "--columns", "unet,resnet")
    assert res.exit_code == 2 and "unknown column 'resnet'" in res.output


def test_leakage_check_fires_for_a_test_stem_in_train() -> None:
    clean = SimpleNamespace(train=("a", "b"), val=("c",), test=("d", "e"))
    check_no_leakage(clean)
    check_no_leakage(clean, train_used=["a"])
    with pytest.raises(SanityError, match="test stem.*also in train: d"):
        check_no_leakage(SimpleNamespace(train=("a", "d"), val=("c",), test=("d", "e")))
    with pytest.raises(SanityError, match="also in val: e"):
        check_no_leakage(SimpleNamespace(train=("a",), val=("e",), test=("d", "e")))
    with pytest.raises(SanityError, match="not in the split's train part"):
        check_no_leakage(clean, train_used=["a", "d"])


def test_leakage_check_runs_before_any_training(
    tmp_path: Path, synth_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hpsearch.training.runner as runner_mod

    real_prepare = runner_mod.prepare_data

    def leaky_prepare(cfg, data_dir, **kw):
        data = real_prepare(cfg, data_dir, **kw)
        s = data.split
        data.split = SimpleNamespace(train=s.train + s.test[:1], val=s.val, test=s.test)
        return data

    def no_training(*a, **k):
        raise AssertionError("trained despite a leaky split")

    monkeypatch.setattr(runner_mod, "prepare_data", leaky_prepare)
    monkeypatch.setattr(runner_mod, "train_from_config", no_training)
    with pytest.raises(SanityError, match="split leakage"):
        reproduce(synth_data, tmp_path, columns=["unet"], quick=True, device="cpu", log=lambda m: None)


def test_columns_with_different_test_sets_are_refused(synth_data: Path) -> None:
    base = load_config(CONFIGS / "report_baseline.yaml")
    split = {"split_file": None, "val_fraction": 0.2, "test_fraction": 0.2}
    a = apply_overrides(base, split={**split, "split_seed": 0})
    b = apply_overrides(base, split={**split, "split_seed": 1})
    check_same_test_set({"unet": a, "tuned": a}, synth_data)
    with pytest.raises(SanityError, match="tuned would be tested on other images"):
        check_same_test_set({"unet": a, "tuned": b}, synth_data)


def test_high_test_dice_prints_a_leakage_warning(capsys: pytest.CaptureFixture[str]) -> None:
    assert leakage_warning("unet seed 0", 0.85) is None
    assert leakage_warning("unet seed 0", 0.90) is None
    msg = warn_if_suspicious("unet seed 0", 0.93)
    assert msg is not None and "0.9300" in msg and "audit" in msg
    assert "WARNING" in capsys.readouterr().out


def test_iou_above_dice_raises() -> None:
    check_iou_le_dice("ok", 0.8, 0.7)
    check_iou_le_dice("equal", 0.5, 0.5)
    with pytest.raises(SanityError, match="IoU 0.810000 > Dice 0.800000"):
        check_iou_le_dice("bad", 0.8, 0.81)
    with pytest.raises(SanityError, match="non-finite"):
        check_iou_le_dice("nan", float("nan"), 0.1)


def test_claim_check_bounds() -> None:
    # Every image at Dice 0.8 gives IoU 0.8 / 1.2; half at 0 and half at 1 gives IoU = Dice = 0.5.
    ck = claim_check(0.8, 0.8 / 1.2)
    assert ck["possible"] and ck["position"] == pytest.approx(0.0, abs=1e-9)
    assert claim_check(0.5, 0.5)["position"] == pytest.approx(1.0)
    assert not claim_check(0.8, 0.6)["possible"]  # below the Jensen bound
    assert not claim_check(0.7, 0.75)["possible"]  # IoU above Dice
    assert all(claim_check(c.claimed_dice, c.claimed_iou)["possible"] for c in COLUMNS.values())


def test_shipped_configs_match_the_report() -> None:
    assert default_config_dir() == CONFIGS
    cfgs = {k: c for k, (c, _) in load_column_configs(list(COLUMNS)).items()}
    base = cfgs["unet"]
    t, d = base.train, base.data
    assert (t.optimizer, t.lr, t.batch_size, t.loss, t.epochs) == ("adam", 1e-3, 8, "bce", 25)
    assert (d.augmentation, d.image_size, d.split_file) == ("none", 256, "kvasir-official")
    wide = cfgs["wide_deep"]
    assert wide.model.kwargs["base_width"] > 64 and wide.model.kwargs["depth"] > 4
    assert wide.train == base.train and wide.data == base.data
    tuned, cbam = cfgs["tuned"], cfgs["cbam"]
    assert "not yet a study result" in tuned.provenance["source"]
    assert cbam.model.name == "cbam_unet" and cbam.train == tuned.train and cbam.data == tuned.data
    assert {c.data.split_file for c in cfgs.values()} == {"kvasir-official"}
    assert "does not state the sizes" in (CONFIGS / "report_wide_deep.yaml").read_text()


def test_tuned_config_replaces_columns_three_and_four(tmp_path: Path) -> None:
    exported = yaml.safe_load((CONFIGS / "tuned_unet.yaml").read_text())
    exported["train"]["lr"] = 5e-4
    exported["provenance"] = {"study": "lr_batch", "trial": 7, "value": 0.8}
    path = tmp_path / "best.yaml"
    path.write_text(yaml.safe_dump(exported))
    cfgs = load_column_configs(["tuned", "cbam"], tuned_config=path)
    assert cfgs["tuned"][0].train.lr == 5e-4 and cfgs["cbam"][0].train.lr == 5e-4
    assert cfgs["cbam"][0].model.name == "cbam_unet"
    exported["model"]["name"] = "cbam_unet"
    path.write_text(yaml.safe_dump(exported))
    with pytest.raises(Exception, match="plain U-Net"):
        load_column_configs(["tuned"], tuned_config=path)


def test_epoch_cap_shortens_warmup_and_quick_shrinks() -> None:
    tuned = load_config(CONFIGS / "tuned_unet.yaml")
    capped = apply_overrides(tuned, epochs=2, seed=5, device="cpu")
    assert (capped.train.epochs, capped.train.warmup_epochs, capped.train.seed) == (2, 1, 5)
    assert apply_overrides(tuned, epochs=500).train.epochs == 80  # a cap never lengthens a run
    q = quick_config(load_config(CONFIGS / "report_wide_deep.yaml"), epochs=1)
    assert q.model.kwargs == {"base_width": 12, "depth": 3}
    assert (q.data.image_size, q.data.augmentation) == (64, "none")
    assert (q.train.epochs, q.train.warmup_epochs, q.train.compile) == (1, 0, "off")
    base = load_config(CONFIGS / "report_baseline.yaml")
    assert quick_config(base, epochs=50).train.epochs == 25  # --epochs in quick mode is a cap too
    assert parse_columns(["cbam,unet", "unet"]) == ["unet", "cbam"]


@pytest.mark.slow
def test_baseline_column_on_real_kvasir(tmp_path: Path, kvasir_dir: Path) -> None:
    """Column 1 at full size for 1 epoch on 8 real images, tested on the 120 official test images (CPU)."""
    res = invoke(
        "reproduce", "--data", kvasir_dir, "--out", tmp_path / "out", "--columns", "unet",
        "--epochs", 1, "--max-train-images", 8, "--device", "cpu",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["kind"] == "full" and results["split"]["official"]
    assert results["split"]["counts"] == {"train": 792, "val": 88, "test": 120}
    col = results["columns"]["unet"]
    assert col["runs"][0]["n_test"] == 120 and col["runs"][0]["n_train"] == 8
    assert col["n_params"] == 31_037_633
    assert col["iou_mean"] <= col["dice_mean"] <= 0.9
    assert (tmp_path / "out" / "unet" / "worst.png").is_file()
