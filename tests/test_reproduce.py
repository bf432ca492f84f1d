"""``hpsearch reproduce``: the five columns end to end (quick, synthetic), its sanity checks, its configs."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from typer.testing import CliRunner

from hpsearch.cli import app
from hpsearch.errors import ConfigError, DataError
from hpsearch.reproduce import (
    COLUMNS,
    ColumnResult,
    ReproduceOptions,
    ReproduceResults,
    RunRecord,
    SanityError,
    check_comparable,
    check_iou_le_dice,
    check_no_leakage,
    check_same_test_set,
    column_config,
    default_config_dir,
    leakage_warning,
    load_column_configs,
    load_references,
    parse_columns,
    quick_config,
    render_markdown,
    reproduce,
    warn_if_suspicious,
)
from hpsearch.training.config import load_config
from hpsearch.training.device import cpu_model

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def run_table(data: Path, out: Path, **options: object) -> ReproduceResults:
    """``reproduce`` quietly, with ``options`` as ``ReproduceOptions`` fields."""
    return reproduce(ReproduceOptions(data=data, out=out, **options), log=lambda m: None)


def table_row(output: str, name: str) -> list[str]:
    """The cells of the printed table's row ``name`` (first cell dropped)."""
    for line in output.splitlines():
        # Only table lines: a blank line (which some rich versions print after a progress display) would
        # otherwise read as the header row's empty first cell.
        if not line.lstrip().startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == name:
            return cells[1:]
    raise AssertionError(f"no row '{name}' in:\n{output}")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory, synth_data: Path) -> tuple[Path, object]:
    """All five columns, quick mode, on the synthetic set (no official split there: random split)."""
    root = tmp_path_factory.mktemp("reproduce")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HPSEARCH_CACHE", str(root / "cache"))
        mp.delenv("HPSEARCH_DATA", raising=False)
        res = invoke("reproduce", "--quick", "--data", synth_data, "--out", root / "out", "--device", "cpu")
    return root / "out", res


def test_quick_run_prints_five_columns_with_their_sizes(quick_run: tuple[Path, object]) -> None:
    out, res = quick_run
    assert res.exit_code == 0, res.output
    labels = table_row(res.output, "")
    assert labels == [c.label for c in COLUMNS.values()] and len(labels) == 5
    assert table_row(res.output, "recipe") == ["baseline", "baseline", "tuned", "tuned", "baseline"]
    assert table_row(res.output, "model") == ["unet", "cbam_unet", "unet", "cbam_unet", "unet"]
    assert table_row(res.output, "image size") == ["64²"] * 5
    # Quick mode shrinks every model by one rule: the wider/deeper U-Net stays wider and deeper.
    assert table_row(res.output, "base width / depth") == ["8 / 2"] * 4 + ["12 / 3"]
    assert table_row(res.output, "epochs") == ["2"] * 5
    split = json.loads((out / "split.json").read_text())
    assert table_row(res.output, "training images") == [f"{len(split['train'])} (cap 16)"] * 5
    refs = load_references().report_figures
    claimed = [f"{refs[k].dice:.2f}" if k in refs else "—" for k in COLUMNS]
    assert table_row(res.output, "Dice (report's claim ¹)") == claimed and claimed[1] == "—"


def test_quick_run_writes_every_column_and_the_results(quick_run: tuple[Path, object]) -> None:
    out, _ = quick_run
    results = json.loads((out / "results.json").read_text())
    assert results["kind"] == "quick" and list(results["columns"]) == list(COLUMNS)
    for key, col in results["columns"].items():
        assert col["n_seeds"] == 1 and len(col["runs"]) == 1 and col["dice_sd"] is None
        assert col["n_kept"] == 0  # a fresh folder: everything trained
        assert (out / key / "worst.png").stat().st_size > 0
        assert (out / key / "seed0" / "curves.png").stat().st_size > 0
        assert (out / key / "seed0" / "run.json").is_file()
        assert load_config(out / key / "config.yaml").data.image_size == 64
    cols = results["columns"]
    assert cols["unet_cbam"]["n_params"] > cols["unet"]["n_params"] == cols["tuned"]["n_params"]
    assert cols["wide_deep"]["n_params"] > cols["unet"]["n_params"]
    md = (out / "results.md").read_text()
    assert "QUICK RUN: not a result" in md and "seeded random split" in md
    # The split sentences are computed from the split that was used, not written for the official one.
    split = json.loads((out / "split.json").read_text())
    n = {k: len(split[k]) for k in ("train", "val", "test")}
    assert f"on the {n['val']} validation images carved from the {n['train'] + n['val']} non-test" in md
    assert f"Test set: {n['test']} images" in md and "880" not in md
    assert load_references().report.source.split(",")[0] in md  # the claims come with their citation
    assert "hpsearch train --config" in md and "hpsearch evaluate --checkpoint" in md
    # Every record names files relative to the results folder (shipped configs relative to the repository),
    # never by this machine's folders.
    records = [out / "results.json", out / "results.md", out / "split.json", *out.glob("*/config.yaml")]
    records += [*out.glob("*/seed0/*.json"), *out.glob("*/seed0/test/*.json")]
    for record in records:
        text = record.read_text()
        assert str(out) not in text and str(Path.home()) not in text and "/tmp/" not in text, record
    run = results["columns"]["unet"]["runs"][0]
    assert (out / run["curves"]).is_file() and (out / results["columns"]["unet"]["worst"]).is_file()
    assert results["columns"]["unet"]["config"] == "configs/report_baseline.yaml"
    # results.md is regenerated from results.json alone, read back as typed records.
    loaded = ReproduceResults.load(out / "results.json")
    assert render_markdown(loaded, out_dir=out) == md and loaded.to_json() == results
    first = loaded.columns["unet"].runs[0]
    assert first.curves == run["curves"] and first.kept is False
    record = json.loads((out / "unet" / "seed0" / "run.json").read_text())
    kept = RunRecord.from_json(record)
    assert kept.to_json() == record and kept.identity == record["identity"] and kept.kept is None
    files = {k: run[k] for k in ("dir", "curves", "worst")}
    assert kept.for_results(kept=False, **files).to_json() == run


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


# ------------------------------------------------------------------------------------------ resuming


@pytest.fixture
def count_training(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every call of ``fit`` (the one training loop) appends the model class it trains."""
    import hpsearch.training.session as trainer

    calls: list[str] = []
    real_fit = trainer.fit

    def counting_fit(model, *args, **kwargs):
        calls.append(kwargs.get("description", "?"))
        return real_fit(model, *args, **kwargs)

    monkeypatch.setattr(trainer, "fit", counting_fit)
    return calls


def test_a_second_run_trains_nothing_and_a_changed_column_reruns(
    tmp_path: Path, synth_data: Path, count_training: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import hpsearch.training.session as trainer

    prepared: list[str] = []
    real_prepare = trainer.prepare_data

    def counting_prepare(cfg, *args, **kwargs):
        prepared.append(cfg.prepared_key())
        return real_prepare(cfg, *args, **kwargs)

    monkeypatch.setattr(trainer, "prepare_data", counting_prepare)
    cdir = tmp_path / "configs"
    shutil.copytree(CONFIGS, cdir)
    kw = dict(columns=["unet", "wide_deep"], quick=True, device="cpu", epochs=1, config_dir=cdir)
    first = run_table(synth_data, tmp_path / "out", **kw)
    assert count_training == ["unet seed 0", "wide_deep seed 0"]
    assert len(prepared) == 1  # both columns read the data alike: the runner's cache loads it once
    records = {k: tmp_path / "out" / k / "seed0" / "run.json" for k in ("unet", "wide_deep")}
    stamps = {k: p.stat().st_mtime_ns for k, p in records.items()}

    count_training.clear()
    again = run_table(synth_data, tmp_path / "out", **kw)
    assert count_training == []  # nothing trained ...
    assert {k: p.stat().st_mtime_ns for k, p in records.items()} == stamps  # ... or re-tested
    for key in ("unet", "wide_deep"):
        assert again.columns[key].dice_mean == first.columns[key].dice_mean
        assert again.columns[key].n_kept == 1

    # A results folder copied without its checkpoints (as the GPU script copies it back) still resumes, and a
    # run kept from another machine keeps naming that machine in its column.
    for key in ("unet", "wide_deep"):
        (tmp_path / "out" / key / "seed0" / "best.pt").unlink()
    rec = json.loads(records["unet"].read_text())
    rec["device"] = "CPU (Another CPU Model, 2 threads)"
    records["unet"].write_text(json.dumps(rec))
    moved = run_table(synth_data, tmp_path / "out", **kw)
    assert count_training == []
    assert moved.columns["unet"].hardware == ("CPU (Another CPU Model, 2 threads)",)
    md = (tmp_path / "out" / "results.md").read_text()
    assert f"Hardware of this sitting: CPU ({cpu_model()}, " in md
    unet_row = next(line for line in md.splitlines() if line.startswith("| U-Net | unet"))
    assert "Another CPU Model" in unet_row and cpu_model() not in unet_row

    # A changed config re-runs that column only.
    wide = yaml.safe_load((cdir / "report_wide_deep.yaml").read_text())
    wide["model"]["kwargs"]["base_width"] = 128
    (cdir / "report_wide_deep.yaml").write_text(yaml.safe_dump(wide))
    count_training.clear()
    changed = run_table(synth_data, tmp_path / "out", **kw)
    assert count_training == ["wide_deep seed 0"]
    assert changed.columns["wide_deep"].base_width == 16 and changed.columns["unet"].n_kept == 1
    # So does a changed option (another epoch cap is another config).
    count_training.clear()
    run_table(synth_data, tmp_path / "out", **{**kw, "columns": ["unet"], "epochs": 2})
    assert count_training == ["unet seed 0"]


def test_an_unfinished_run_is_not_kept(tmp_path: Path, synth_data: Path, count_training: list[str]) -> None:
    kw = dict(columns=["unet"], quick=True, device="cpu", epochs=1)
    run_table(synth_data, tmp_path, **kw)
    (tmp_path / "unet" / "seed0" / "test" / "per_case.csv").unlink()  # as if it died while testing
    count_training.clear()
    run_table(synth_data, tmp_path, **kw)
    assert count_training == ["unet seed 0"]
    # A record that lacks a measurement (written by hand, or by something else) is no finished run either.
    path = tmp_path / "unet" / "seed0" / "run.json"
    record = json.loads(path.read_text())
    del record["dice"]
    path.write_text(json.dumps(record))
    count_training.clear()
    again = run_table(synth_data, tmp_path, **kw)
    assert count_training == ["unet seed 0"] and "dice" in json.loads(path.read_text())
    assert again.columns["unet"].n_kept == 0


def test_a_copied_dataset_resumes_and_a_changed_one_reruns(
    tmp_path: Path, synth_data: Path, count_training: list[str]
) -> None:
    import os

    import numpy as np
    from PIL import Image

    data = tmp_path / "data"
    shutil.copytree(synth_data, data)
    kw = dict(columns=["unet"], quick=True, device="cpu", epochs=1)
    run_table(data, tmp_path / "out", **kw)
    for f in data.rglob("*.png"):  # what a copy to a fresh machine does to the files
        os.utime(f, (f.stat().st_atime + 1000, f.stat().st_mtime + 1000))
    count_training.clear()
    run_table(data, tmp_path / "out", **kw)
    assert count_training == []
    # The same data in another folder (as on another machine) and the results moved with it: still kept.
    shutil.move(data, tmp_path / "elsewhere")
    shutil.move(tmp_path / "out", tmp_path / "moved")
    data = tmp_path / "elsewhere"
    run_table(data, tmp_path / "moved", **kw)
    assert count_training == []
    image = sorted((data / "images").glob("*.png"))[0]
    pixels = np.asarray(Image.open(image)).copy()
    pixels[: pixels.shape[0] // 2] = 255 - pixels[: pixels.shape[0] // 2]
    Image.fromarray(pixels).save(image)
    run_table(data, tmp_path / "moved", **kw)
    assert count_training == ["unet seed 0"]


def test_seeds_change_only_the_training_seed(tmp_path: Path, synth_data: Path) -> None:
    res = invoke(
        "reproduce", "--quick", "--data", synth_data, "--out", tmp_path, "--columns", "unet",
        "--seeds", 2, "--epochs", 1, "--device", "cpu",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    col = json.loads((tmp_path / "results.json").read_text())["columns"]["unet"]
    assert [r["seed"] for r in col["runs"]] == [0, 1] and col["n_seeds"] == 2
    assert col["dice_sd"] is not None
    cfgs = [json.loads((tmp_path / "unet" / f"seed{s}" / "metrics.json").read_text()) for s in (0, 1)]
    assert cfgs[0]["manifest"]["split_hash"] == cfgs[1]["manifest"]["split_hash"]
    assert cfgs[0]["config"]["train"]["seed"] == 0 and cfgs[1]["config"]["train"]["seed"] == 1
    for c in cfgs:
        c["config"]["train"].pop("seed")
    assert cfgs[0]["config"] == cfgs[1]["config"]
    assert "± " in (tmp_path / "results.md").read_text()


# ------------------------------------------------------------------------------------------ the records

COMMITTED = sorted((REPO / "docs" / "results").rglob("results.json"))


def test_the_committed_results_are_there_to_check() -> None:
    assert len(COMMITTED) >= 3 and len(list((REPO / "docs" / "results").rglob("run.json"))) >= 10


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: "/".join(p.parts[-3:-1]))
def test_committed_results_round_trip_unchanged(path: Path) -> None:
    """Every results.json in docs/results reads into typed records and writes back to the same JSON (the
    same keys, in the same order, with the same values), and its run.json files do too."""
    data = json.loads(path.read_text())
    results = ReproduceResults.from_json(data, str(path))
    assert json.dumps(results.to_json(), indent=2) == json.dumps(data, indent=2)
    for key, col in results.columns.items():
        assert isinstance(col, ColumnResult) and all(isinstance(r, RunRecord) for r in col.runs)
        assert col.dice_mean == data["columns"][key]["dice_mean"] and len(col.runs) == col.n_seeds
        for run in col.runs:
            record = json.loads((path.parent / key / f"seed{run.seed}" / "run.json").read_text())
            kept = RunRecord.from_json(record)
            assert json.dumps(kept.to_json()) == json.dumps(record) and kept.dice == run.dice
    # The table the CLI prints shows the figures read back.
    table = render_markdown(results).splitlines()
    dice_row = [line for line in table if line.startswith("| Dice (this run)")]
    assert dice_row and all(f"{c.dice_mean:.3f}" in dice_row[0] for c in results.columns.values())


def test_a_record_with_other_keys_is_refused_in_one_line() -> None:
    data = json.loads(COMMITTED[0].read_text())
    run = data["columns"]["unet"]["runs"][0]
    del run["dice"]
    run["dise"] = 0.5
    where = r"^results\.columns\.unet\.runs\[0\]: "
    with pytest.raises(DataError, match=where + "lacks dice; has unknown keys dise;"):
        ReproduceResults.from_json(data)
    # A key that older files lack reads as None and is not written back.
    run["dice"] = run.pop("dise")
    del run["resumed_from_epoch"]
    again = ReproduceResults.from_json(data).columns["unet"].runs[0]
    assert again.resumed_from_epoch is None and "resumed_from_epoch" not in again.to_json()


def test_a_results_file_that_is_not_json_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(DataError, match="results.json: cannot read it as results"):
        ReproduceResults.load(tmp_path / "results.json")


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("seeds", 0, "--seeds is 0; expected 1 or more"),
        ("epochs", 0, "--epochs is 0; expected 1 or more"),
        ("compile_mode", "sometimes", "--compile 'sometimes' is not one of: auto, on, off"),
    ],
)
def test_options_are_checked_when_built(option: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ReproduceOptions(data="data", **{option: value})  # type: ignore[arg-type]
    assert getattr(ReproduceOptions(data="data"), option) != value  # the defaults are valid


# ---------------------------------------------------------------------------------- refusals and checks


def test_full_mode_refuses_data_the_split_was_not_made_for(tmp_path: Path, synth_data: Path) -> None:
    res = invoke("reproduce", "--data", synth_data, "--out", tmp_path / "out", "--columns", "unet")
    assert res.exit_code == 1
    assert "--quick" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "out" / "unet").exists()


def test_the_columns_option_names_every_column() -> None:
    res = invoke("reproduce", "--help")
    assert res.exit_code == 0 and all(k in res.output for k in COLUMNS)


def test_unknown_column_is_one_line(tmp_path: Path, synth_data: Path) -> None:
    res = invoke("reproduce", "--quick", "--data", synth_data, "--out", tmp_path, "--columns", "unet,cbam")
    assert res.exit_code == 1 and "unknown column 'cbam'" in res.output
    assert all(k in res.output for k in COLUMNS)  # the miss lists the valid keys


@pytest.mark.parametrize(
    ("column", "config_file", "field", "value", "pair"),
    [
        ("unet_cbam", "report_baseline_cbam.yaml", ("data", "image_size"), 320, ("unet", "unet_cbam")),
        ("unet_cbam", "report_baseline_cbam.yaml", ("train", "lr"), 3e-4, ("unet", "unet_cbam")),
        ("tuned", "tuned_unet.yaml", ("model", "kwargs", "base_width"), 32, ("unet", "tuned")),
        ("tuned", "tuned_unet.yaml", ("data", "max_train_images"), 100, ("unet", "tuned")),
        ("tuned", "tuned_unet.yaml", ("data", "max_train_images"), 100, ("tuned", "tuned_cbam")),
        ("tuned_cbam", "tuned_cbam_unet.yaml", ("train", "batch_size"), 16, ("tuned", "tuned_cbam")),
        ("wide_deep", "report_wide_deep.yaml", ("train", "epochs"), 50, ("unet", "wide_deep")),
    ],
)
def test_columns_that_differ_in_more_than_they_vary_are_refused(
    tmp_path: Path, synth_data: Path, column: str, config_file: str, field: tuple, value: object, pair: tuple
) -> None:
    cdir = tmp_path / "configs"
    shutil.copytree(CONFIGS, cdir)
    doc = yaml.safe_load((cdir / config_file).read_text())
    node = doc
    for part in field[:-1]:
        node = node[part]
    node[field[-1]] = value
    (cdir / config_file).write_text(yaml.safe_dump(doc))
    dotted = ".".join(field)
    with pytest.raises(ConfigError, match=rf"columns '{pair[0]}' and '{pair[1]}'.*{dotted}: "):
        run_table(synth_data, tmp_path / "out", columns=list(pair), quick=True, device="cpu", config_dir=cdir)
    assert not (tmp_path / "out").exists()  # refused before anything ran


def test_the_refusal_reaches_the_cli_as_one_line(tmp_path: Path, synth_data: Path) -> None:
    exported = yaml.safe_load((CONFIGS / "tuned_unet.yaml").read_text())
    exported["data"]["image_size"] = 320
    (tmp_path / "best.yaml").write_text(yaml.safe_dump(exported))
    res = invoke(
        "reproduce", "--quick", "--data", synth_data, "--out", tmp_path / "out", "--device", "cpu",
        "--columns", "unet,tuned", "--tuned-config", tmp_path / "best.yaml",
    )  # fmt: skip
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "'unet' and 'tuned'" in res.output and "data.image_size: 256 vs 320" in res.output


def test_shipped_configs_vary_one_thing_per_contrast() -> None:
    cfgs = {k: c for k, (c, _) in load_column_configs(list(COLUMNS)).items()}
    check_comparable(cfgs)  # any field edited in one config but not its partner makes this raise
    # Each contrast does vary what it is meant to (else the column would be a copy of its partner).
    assert cfgs["unet_cbam"].model.name == cfgs["tuned_cbam"].model.name == "cbam_unet"
    assert cfgs["unet"].train != cfgs["tuned"].train and cfgs["unet_cbam"].train != cfgs["tuned_cbam"].train
    assert cfgs["wide_deep"].model.kwargs != cfgs["unet"].model.kwargs
    assert {c.data.split_file for c in cfgs.values()} == {"kvasir-official"}


def test_baseline_config_is_the_cited_recipe() -> None:
    """configs/report_baseline.yaml encodes the recipe that references.yaml cites from the report."""
    recipe = load_references().baseline_recipe
    base = load_config(CONFIGS / "report_baseline.yaml")
    flat = {**base.train.model_dump(), **base.data.model_dump()}
    assert recipe and {k: flat[k] for k in recipe} == recipe


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
    import hpsearch.training.session as runner_mod

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
        run_table(synth_data, tmp_path, columns=["unet"], quick=True, device="cpu")


def test_columns_with_different_test_sets_are_refused(synth_data: Path) -> None:
    base = load_config(CONFIGS / "report_baseline.yaml")
    split = {"split_file": None, "val_fraction": 0.2, "test_fraction": 0.2}
    a = column_config(base, split={**split, "split_seed": 0})
    b = column_config(base, split={**split, "split_seed": 1})
    assert check_same_test_set({"unet": a, "tuned": a}, synth_data).test
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


def test_tuned_config_replaces_both_tuned_columns(tmp_path: Path) -> None:
    exported = yaml.safe_load((CONFIGS / "tuned_unet.yaml").read_text())
    exported["train"]["lr"] = 5e-4
    exported["provenance"] = {"study": "lr_batch", "trial": 7, "value": 0.8}
    path = tmp_path / "best.yaml"
    path.write_text(yaml.safe_dump(exported))
    cfgs = load_column_configs(["unet", "tuned", "tuned_cbam"], tuned_config=path)
    assert cfgs["tuned"][0].train.lr == 5e-4 and cfgs["tuned_cbam"][0].train.lr == 5e-4
    assert cfgs["tuned_cbam"][0].model.name == "cbam_unet"
    assert cfgs["tuned_cbam"][0].provenance["trial"] == 7  # the derived column keeps where it came from
    check_comparable({k: c for k, (c, _) in cfgs.items()})
    exported["model"]["name"] = "cbam_unet"
    path.write_text(yaml.safe_dump(exported))
    with pytest.raises(ConfigError, match="plain U-Net"):
        load_column_configs(["tuned"], tuned_config=path)


def test_epoch_cap_shortens_warmup_and_quick_shrinks() -> None:
    tuned = load_config(CONFIGS / "tuned_unet.yaml")
    # The shipped export has a constant learning rate; a cosine schedule with warm-up is what a cap shortens.
    warm = tuned.train.model_copy(update={"warmup_epochs": 3, "scheduler": "cosine"})
    tuned = tuned.model_copy(update={"train": warm})
    capped = column_config(tuned, epochs=2, seed=5, device="cpu")
    assert (capped.train.epochs, capped.train.warmup_epochs, capped.train.seed) == (2, 1, 5)
    assert column_config(tuned, epochs=10_000).train.epochs == tuned.train.epochs  # a cap never lengthens
    q = quick_config(load_config(CONFIGS / "report_wide_deep.yaml"), epochs=1)
    assert q.model.kwargs == {"base_width": 12, "depth": 3}
    assert (q.data.image_size, q.data.augmentation) == (64, "none")
    assert (q.train.epochs, q.train.warmup_epochs, q.train.compile) == (1, 0, "off")
    base = load_config(CONFIGS / "report_baseline.yaml")
    assert quick_config(base, epochs=10_000).train.epochs == base.train.epochs  # quick --epochs is a cap too
    assert parse_columns(["tuned_cbam,unet", "unet"]) == ["unet", "tuned_cbam"]
    assert default_config_dir() == CONFIGS


# ---------------------------------------------------------------------------------- reference figures


def test_a_reference_figure_without_a_full_citation_is_refused() -> None:
    from hpsearch.reproduce.references import REFERENCES_FILE, parse_references

    data = yaml.safe_load(REFERENCES_FILE.read_text())
    parse_references(data)
    del data["outside"]["reference_unet"]["resolution"]
    with pytest.raises(ConfigError, match="outside.reference_unet' lacks resolution"):
        parse_references(data)


def _figure_strings() -> set[str]:
    """Every reference figure as written in references.yaml (e.g. '0.71', '0.834')."""
    from hpsearch.reproduce.references import REFERENCES_FILE

    data = yaml.safe_load(REFERENCES_FILE.read_text())
    entries = list(data["report"]["figures"].values()) + list(data["outside"].values())
    text = REFERENCES_FILE.read_text()
    found = set()
    for e in entries:
        for metric in ("dice", "iou"):
            for digits in (2, 3):
                s = f"{e[metric]:.{digits}f}"
                if f"{metric}: {s}" in text:
                    found.add(s)
    return found


def test_reference_figures_are_written_only_in_the_data_file() -> None:
    import re

    figures = _figure_strings()
    assert {"0.71", "0.85", "0.834"} <= figures
    files = [*Path(__file__).resolve().parents[1].joinpath("hpsearch", "reproduce").glob("*.py")]
    files += [*CONFIGS.glob("*.yaml"), Path(__file__).resolve().parents[1] / "hpsearch/cli/reproduce_cmd.py"]
    for path in files:
        text = path.read_text()
        for s in figures:
            assert not re.search(rf"(?<![\d.]){re.escape(s)}(?!\d)", text), f"{path} spells out {s}"


def test_config_pointers_name_existing_reference_entries() -> None:
    import re

    outside = load_references().outside
    named = {m for p in CONFIGS.glob("*.yaml") for m in re.findall(r"outside\.(\w+)", p.read_text())}
    assert named and named <= set(outside)


def test_the_claims_doc_table_matches_the_data_file() -> None:
    """Each row of docs/report-claims.md's pair table: the figures are the data file's, the bounds and
    positions are right for them."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "report-claims.md").read_text()
    refs = load_references()
    figures = {f"report: {f.label}": f for f in refs.report_figures.values()}
    figures |= {f"outside: {f.label}": f for f in refs.outside.values()}
    rows = [r for r in doc.splitlines() if r.startswith(("| report:", "| outside:"))]
    assert len(rows) == len(figures)
    for row in rows:
        name, _, dice, iou, lo, hi, pos, span = [c.strip() for c in row.strip("|").split("|")]
        f = figures[name]
        assert (float(dice), float(iou)) == (f.dice, f.iou)
        low = f.dice / (2 - f.dice)
        assert float(lo) == pytest.approx(low, abs=5e-4) and float(hi) == f.dice
        assert float(pos) == pytest.approx((f.iou - low) / (f.dice - low), abs=5e-3)
        corners = []
        for d in (f.dice - 0.005, f.dice + 0.005):
            for j in (f.iou - 0.005, f.iou + 0.005):
                corners.append((j - d / (2 - d)) / (d - d / (2 - d)))
        a, b = (float(x) for x in span.split("–"))
        assert (a, b) == (pytest.approx(min(corners), abs=5e-3), pytest.approx(max(corners), abs=5e-3))


@pytest.mark.slow
def test_baseline_column_on_real_kvasir(tmp_path: Path, kvasir_dir: Path) -> None:
    """Column 1 at full size for 1 epoch on 8 real images, tested on the official test images (CPU)."""
    res = invoke(
        "reproduce", "--data", kvasir_dir, "--out", tmp_path / "out", "--columns", "unet",
        "--epochs", 1, "--max-train-images", 8, "--device", "cpu",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["kind"] == "full" and results["split"]["official"]
    shipped = Path(__file__).resolve().parents[1] / "hpsearch" / "splits" / "kvasir-official"
    official_test = sorted((shipped / "test.txt").read_text().split())
    with (tmp_path / "out" / "unet" / "seed0" / "test" / "per_case.csv").open() as fh:
        assert sorted(row["stem"] for row in csv.DictReader(fh)) == official_test
    counts = results["split"]["counts"]
    assert counts["test"] == len(official_test)
    assert counts["train"] + counts["val"] == len((shipped / "train.txt").read_text().split())
    col = results["columns"]["unet"]
    assert col["runs"][0]["n_train"] == 8 and col["image_size"] == 256 and col["base_width"] == 64
    md = (tmp_path / "out" / "results.md").read_text()
    assert f"carved from the {counts['train'] + counts['val']} non-test images" in md


def test_a_default_spelled_out_and_another_seed_are_no_difference() -> None:
    from hpsearch.reproduce import column_differences
    from hpsearch.training.config import resolve_run_config

    def cfg(kwargs: dict, seed: int):
        return resolve_run_config(
            {"model": {"name": "unet", "kwargs": kwargs}, "train": {"seed": seed}}, scale="laptop"
        )

    # An export that leaves depth out builds the same model as a column file with the default depth 4.
    assert column_differences(cfg({"base_width": 64}, 1), cfg({"base_width": 64, "depth": 4}, 0)) == {}
    assert column_differences(cfg({"base_width": 64}, 0), cfg({"base_width": 64, "depth": 5}, 0)) == {
        "model.kwargs.depth": (4, 5)
    }
