"""`hpsearch train` / `hpsearch evaluate` from the command line, as a new user would type them."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pytest
import yaml

TINY = {
    "data": {"image_size": 64, "augmentation": "basic", "val_fraction": 0.25, "test_fraction": 0.15},
    "model": {"name": "cbam_unet", "kwargs": {"base_width": 8, "depth": 2}},
    "train": {"epochs": 2, "batch_size": 4, "lr": 1e-2, "loss": "bce_dice", "device": "cpu"},
}


def test_config_in_metrics_json_reproduces_the_run(synth_data: Path, tmp_path: Path, invoke) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    first = invoke("train", "--config", cfg, "--data", synth_data, "--out", tmp_path / "a")
    assert first.exit_code == 0, first.output
    a = json.loads((tmp_path / "a/metrics.json").read_text())
    # The resolved config, its data path included (relative to the folder metrics.json is in).
    again = tmp_path / "a" / "again.yaml"
    again.write_text(yaml.safe_dump(a["config"]))
    second = invoke("train", "--config", again, "--out", tmp_path / "b")
    assert second.exit_code == 0, second.output
    b = json.loads((tmp_path / "b/metrics.json").read_text())
    assert [h["val_dice"] for h in a["history"]] == [h["val_dice"] for h in b["history"]]
    assert a["config"] == b["config"]

    res = invoke("evaluate", "--checkpoint", tmp_path / "a/best.pt", "--out", tmp_path / "e",
                 "--split", "all", "--k", 3)
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "e/metrics.json").read_text())
    assert m["n"] == 24 and m["split"] == "all" and m["iou_mean"] <= m["dice_mean"]
    assert m["split_source"] == "every pair in the folder" and "warning" not in res.output
    assert "all split (every pair in the folder): 24 images scored" in " ".join(res.output.split())
    # 'test' of a config without a split file is a random carve, not a sealed test set: it says so.
    res = invoke("evaluate", "--checkpoint", tmp_path / "a/best.pt", "--out", tmp_path / "t")  # --split test
    said = " ".join(res.output.split())
    assert res.exit_code == 0 and "warning: the run's config has no data.split_file" in said
    t = json.loads((tmp_path / "t/metrics.json").read_text())
    source = "the seeded random split (split_seed 0, no split_file)"
    assert f"test split ({source}): {t['n']} images scored" in said
    # The records name files relative to their folder, never by this machine's folders.
    assert a["checkpoint"] == "best.pt" and m["checkpoint"] == "../a/best.pt"
    assert (tmp_path / "e" / m["data_dir"]).resolve() == synth_data.resolve()
    for record in (a, b, m):
        assert str(tmp_path) not in json.dumps(record) and "/tmp/" not in json.dumps(record)


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
def test_bad_config_is_one_line_naming_the_field(tmp_path: Path, patch: dict, field: str, invoke) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump(patch))
    res = invoke("train", "--config", cfg, "--out", tmp_path / "o")
    assert res.exit_code == 1, res.output
    text = " ".join(res.output.split())
    assert f"'{field}'" in text and "Traceback" not in res.output
    assert not (tmp_path / "o").exists()


def test_evaluate_missing_checkpoint_is_one_line(tmp_path: Path, invoke) -> None:
    res = invoke("evaluate", "--checkpoint", tmp_path / "nope.pt")
    assert res.exit_code == 1 and "does not exist" in res.output


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["evaluate", "--checkpoint", "x.pt", "--split", "holdout"], "--split"),
        (["export", "--format", "xml"], "--format"),
        (["reproduce", "--compile", "sometimes"], "--compile"),
    ],
)
def test_a_choice_outside_its_list_is_a_usage_error_naming_the_choices(
    args: list[str], option: str, invoke
) -> None:
    res = invoke(*args)
    assert res.exit_code == 2 and option in res.output and "Traceback" not in res.output, res.output
    assert args[-1] in res.output


def test_cli_choices_are_the_librarys() -> None:
    """The CLI declares its choices; they must stay the values the library accepts."""
    from hpsearch.cli.flags import CompileMode, EvalSplit, ExportFormat
    from hpsearch.results.export import export_best
    from hpsearch.training.config import TrainConfig
    from hpsearch.training.evaluate import SplitName

    fmt = typing.get_type_hints(export_best)["fmt"]
    assert {m.value for m in ExportFormat} == set(typing.get_args(fmt))
    assert {m.value for m in EvalSplit} == set(typing.get_args(SplitName))
    compile_modes = typing.get_args(TrainConfig.model_fields["compile"].annotation)
    assert {m.value for m in CompileMode} == set(compile_modes)


def test_an_hpsearch_error_exits_1_and_a_usage_error_exits_2(invoke, tmp_path: Path) -> None:
    missing = invoke("train", "--config", tmp_path / "nope.yaml", "--out", tmp_path / "o")
    assert missing.exit_code == 1 and "config file" in missing.output and "Traceback" not in missing.output
    usage = invoke("train", "--out", tmp_path / "o")  # --config is required
    assert usage.exit_code == 2 and "--config" in usage.output


def test_help_names_values_and_shows_no_type_tags(invoke) -> None:
    """Current typer would print a type tag beside every option (`--help <bool>`, `--timeout <float>`)."""
    import re

    from hpsearch.cli import app

    groups = [[]] + [[info.name] for info in app.registered_groups]
    commands = [[c.name or c.callback.__name__] for c in app.registered_commands]
    for group in app.registered_groups:
        commands += [[group.name, c.name] for c in group.typer_instance.registered_commands]
    for words in groups + commands:
        res = invoke(*words, "--help", env={"COLUMNS": "200"})
        assert res.exit_code == 0, (words, res.output)
        assert not re.search(r"<(bool|str|int|float|path)[^>]*>", res.output), (words, res.output)
    run = invoke("run", "--help", env={"COLUMNS": "200"}).output
    assert re.search(r"--timeout\s+SECONDS", run) and re.search(r"--set\s+KEY=VALUE", run)
    assert re.search(r"--estimate\s+--no-estimate\s+time", run)  # a flag: no value named


def test_train_set_overrides_a_config_value_as_run_does(synth_data: Path, tmp_path: Path, invoke) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump(TINY))  # 2 epochs
    res = invoke("train", "--config", cfg, "--data", synth_data, "--out", tmp_path / "a",
                 "--set", "train.epochs=1", "--set", "model.kwargs.base_width=4")  # fmt: skip
    assert res.exit_code == 0, res.output
    a = json.loads((tmp_path / "a/metrics.json").read_text())
    assert a["epochs_run"] == 1 and a["config"]["train"]["epochs"] == 1
    assert a["config"]["model"]["kwargs"]["base_width"] == 4
    bad = invoke("train", "--config", cfg, "--data", synth_data, "--set", "train.epochs", "--out", tmp_path)
    assert bad.exit_code == 1 and "is not KEY=VALUE" in bad.output
