"""Tests for hpsearch.results.export: best trial -> run config file that load_config reads back unchanged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from hpsearch.errors import ConfigError, StorageError
from hpsearch.results.export import export_best
from hpsearch.results.query import best_trial_summary
from hpsearch.search import keys
from hpsearch.training.config import RunConfig, load_config

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPEC = {
    "name": "tiny",
    "metric": "val_dice",
    "direction": "maximize",
    "space": {
        "train.lr": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
        "train.batch_size": {"type": "categorical", "choices": [4, 8, 16]},
        "model.kwargs.base_width": {"type": "int", "low": 8, "high": 32, "step": 8},
    },
    "fixed": {"train": {"epochs": 3}},
}
DISTS = {
    "train.lr": FloatDistribution(1e-5, 1e-2, log=True),
    "train.batch_size": CategoricalDistribution([4, 8, 16]),
    "model.kwargs.base_width": IntDistribution(8, 32, step=8),
}


def trial_config(params: dict[str, Any]) -> dict[str, Any]:
    """The full RunConfig a trial stores, as objective.py writes it (JSON dict, provenance null)."""
    cfg = RunConfig.model_validate(
        {
            "data": {"path": "/data/kvasir", "image_size": 64},
            "model": {"name": "unet", "kwargs": {"base_width": params["model.kwargs.base_width"]}},
            "train": {
                "epochs": 3,
                "lr": params["train.lr"],
                "batch_size": params["train.batch_size"],
                "seed": 7,
            },
        }
    )
    return cfg.model_dump(mode="json")


def add(study: optuna.Study, state: TrialState, params: dict[str, Any], dice: list[float]) -> None:
    attrs: dict[str, Any] = {"config": trial_config(params), "trial_wall_s": 10.0}
    if state == TrialState.COMPLETE:
        attrs.update(
            best_val_dice=max(dice),
            best_val_iou=max(dice) - 0.1,
            best_epoch=dice.index(max(dice)) + 1,
            epochs_run=len(dice),
            device="cpu",
            train_img_per_s=50.0,
            peak_memory_mb=100.0,
        )
    study.add_trial(
        optuna.create_trial(
            state=state,
            value=max(dice) if state == TrialState.COMPLETE else None,
            params=params,
            distributions=DISTS,
            user_attrs=attrs,
            intermediate_values={i + 1: v for i, v in enumerate(dice)},
        )
    )


def build_study(db: Path, *, states: list[TrialState] | None = None) -> tuple[str, str]:
    """Three trials; by default trial 1 is the best COMPLETE one; trial 2 scored higher but was pruned."""
    url = f"sqlite:///{db}"
    study = optuna.create_study(storage=url, study_name="tiny", direction="maximize")
    study.set_user_attr(keys.SPEC, json.dumps(SPEC))
    study.set_user_attr(keys.DATA_SPLIT_HASH, "abc123")
    study.set_user_attr(keys.VERSION, "0.1.0")
    rows = [
        ({"train.lr": 1e-3, "train.batch_size": 8, "model.kwargs.base_width": 16}, [0.4, 0.6, 0.7]),
        # The best one; lr=1e-5 checks that YAML keeps a dot-less float a float (PyYAML needs "1.0e-05").
        ({"train.lr": 1e-5, "train.batch_size": 16, "model.kwargs.base_width": 32}, [0.5, 0.8, 0.85]),
        ({"train.lr": 3e-3, "train.batch_size": 4, "model.kwargs.base_width": 8}, [0.2, 0.3, 0.9]),
    ]
    states = states or [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED]
    for (params, dice), state in zip(rows, states, strict=True):
        add(study, state, params, dice)
    return url, "tiny"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once: creating an Optuna schema costs far more than copying the file."""
    db = tmp_path_factory.mktemp("template") / "study.db"
    build_study(db)
    return db


def make_study(tmp_path: Path, template: Path) -> tuple[str, str]:
    """A private copy of the template study (tests may add trials to it)."""
    db = tmp_path / "study.db"
    shutil.copyfile(template, db)
    return f"sqlite:///{db}", "tiny"


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_export_round_trips_through_load_config(tmp_path: Path, template: Path, fmt: str) -> None:
    url, name = make_study(tmp_path, template)
    out = export_best(url, name, tmp_path / f"best.{fmt}", fmt=fmt)
    loaded = load_config(out)  # the provenance section must not break loading
    study = optuna.load_study(study_name=name, storage=url)
    best = study.trials[1]  # the pruned trial reached 0.9 but only COMPLETE trials count
    expected = RunConfig.model_validate(best.user_attrs["config"])
    assert loaded.model_dump(exclude={"provenance"}) == expected.model_dump(exclude={"provenance"})
    assert loaded.train.lr == 1e-5 and isinstance(loaded.train.lr, float)
    prov = loaded.provenance
    assert prov is not None
    assert prov["study"] == "tiny" and prov["trial"] == 1 and prov["value"] == pytest.approx(0.85)
    assert prov["metric"] == "val_dice" and prov["data_split_hash"] == "abc123"
    assert prov["hpsearch_version"] == "0.1.0"
    # An ISO date must come back as the same string, not as a YAML timestamp object.
    assert isinstance(prov["exported"], str) and prov["exported"].endswith("+00:00")
    # The file names no machine folder: the storage is relative to the export's folder.
    assert prov["storage"] == "sqlite:///study.db" and str(tmp_path) not in out.read_text()
    # Load -> dump -> load again gives the same object, provenance included.
    again = load_config(export_again(loaded, tmp_path / f"again.{fmt}", fmt))
    assert again == loaded


def export_again(cfg: RunConfig, path: Path, fmt: str) -> Path:
    from hpsearch.training.config import dump_config

    return dump_config(cfg, path, fmt=fmt)  # type: ignore[arg-type]


def test_export_masks_the_storage_password(
    tmp_path: Path, template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, name = make_study(tmp_path, template)
    study = optuna.load_study(study_name=name, storage=url)
    from hpsearch.results import export

    # Pretend the study lives in PostgreSQL: only the URL used for provenance matters here.
    monkeypatch.setattr(export, "load_study", lambda _url, _name: study)
    secret_url = "postgresql+psycopg://alice:s3cret@db.example:5432/hp"
    out = export_best(secret_url, name, tmp_path / "best.yaml")
    text = out.read_text()
    assert "s3cret" not in text
    assert load_config(out).provenance["storage"] == "postgresql+psycopg://alice:***@db.example:5432/hp"


def test_yaml_is_readable_and_ordered(tmp_path: Path, template: Path) -> None:
    url, name = make_study(tmp_path, template)
    out = export_best(url, name, tmp_path / "best.yaml")
    data = yaml.safe_load(out.read_text())
    assert list(data) == ["data", "model", "train", "scale", "provenance"]
    assert data["model"]["kwargs"] == {"base_width": 32}
    assert data["scale"] == "full"  # the scale it trained at travels with the export


def test_export_into_a_folder(tmp_path: Path, template: Path) -> None:
    url, name = make_study(tmp_path, template)
    (tmp_path / "out").mkdir()
    out = export_best(url, name, tmp_path / "out", fmt="json")
    assert out == tmp_path / "out" / "tiny_best.json"
    assert json.loads(out.read_text())["provenance"]["trial"] == 1


def test_no_complete_trial_says_what_there_is(tmp_path: Path) -> None:
    url, name = build_study(tmp_path / "s.db", states=[TrialState.PRUNED, TrialState.PRUNED, TrialState.FAIL])
    with pytest.raises(ConfigError, match=r"no COMPLETE trial \(2 PRUNED, 1 FAIL\).*run more trials"):
        export_best(url, name, tmp_path / "best.yaml")
    assert not (tmp_path / "best.yaml").exists()


def test_unknown_study_lists_the_known_ones(tmp_path: Path, template: Path) -> None:
    url, _ = make_study(tmp_path, template)
    with pytest.raises(ConfigError, match="no study 'nope'.*studies there: tiny"):
        export_best(url, "nope", tmp_path / "best.yaml")


def test_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    db = tmp_path / "typo.db"
    with pytest.raises(StorageError, match="does not exist"):
        export_best(f"sqlite:///{db}", "tiny", tmp_path / "best.yaml")
    assert not db.exists()


def test_bad_format_and_trial_without_config(tmp_path: Path, template: Path) -> None:
    url, name = make_study(tmp_path, template)
    with pytest.raises(ConfigError, match="format 'toml'"):
        export_best(url, name, tmp_path / "best.toml", fmt="toml")  # type: ignore[arg-type]
    study = optuna.load_study(study_name=name, storage=url)
    study.add_trial(optuna.create_trial(value=0.99, params={}, distributions={}))
    with pytest.raises(ConfigError, match="trial 3 .* no stored run config"):
        export_best(url, name, tmp_path / "best.yaml")


def test_stored_config_that_no_longer_validates_names_trial_and_field(tmp_path: Path, template: Path) -> None:
    url, name = make_study(tmp_path, template)
    study = optuna.load_study(study_name=name, storage=url)
    cfg = trial_config({"train.lr": 1e-3, "train.batch_size": 8, "model.kwargs.base_width": 16})
    cfg["train"]["old_option"] = 1
    study.add_trial(optuna.create_trial(value=0.99, params={}, distributions={}, user_attrs={"config": cfg}))
    with pytest.raises(ConfigError, match="trial 3 of study 'tiny'.*train.old_option"):
        export_best(url, name, tmp_path / "best.yaml")


def test_best_trial_summary(tmp_path: Path, template: Path) -> None:
    url, name = make_study(tmp_path, template)
    summary = best_trial_summary(optuna.load_study(study_name=name, storage=url))
    assert summary["number"] == 1 and summary["value"] == pytest.approx(0.85)
    assert summary["params"]["train.batch_size"] == 16
    assert summary["best_epoch"] == 3 and summary["device"] == "cpu"
    assert summary["metric"] == "val_dice" and summary["direction"] == "maximize"
    assert summary["artifacts"] == {} and summary["worker"] is None  # not recorded: present, empty
    assert json.loads(json.dumps(summary)) == summary  # JSON-safe: survives report.json unchanged


def test_cli_export_and_report_pick_the_only_study_without_study(tmp_path: Path, template: Path) -> None:
    from typer.testing import CliRunner

    from hpsearch.cli import app

    url, _ = make_study(tmp_path, template)
    cli = CliRunner()
    res = cli.invoke(app, ["export", "--storage", url, "--out", str(tmp_path / "best.yaml")])
    assert res.exit_code == 0, res.output
    assert load_config(tmp_path / "best.yaml").train.lr == pytest.approx(1e-5)  # trial 1, the best COMPLETE
    res = cli.invoke(app, ["report", "--storage", url, "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    assert "tiny" in (tmp_path / "rep" / "report.md").read_text()
    # Two studies: it asks which one, listing both, and writes nothing.
    optuna.create_study(storage=url, study_name="other")
    res = cli.invoke(app, ["export", "--storage", url, "--out", str(tmp_path / "again.yaml")])
    assert res.exit_code == 1 and "other" in res.output and "--study NAME" in res.output
    assert not (tmp_path / "again.yaml").exists()
