"""The search service end to end on synthetic data: run, record, prune, resume, export -> train, evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from optuna_dashboard import get_note

from hpsearch.errors import NonFiniteLossError
from hpsearch.search import keys

N_TRIALS = 6


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory, synth_data: Path, invoke) -> dict:
    root = tmp_path_factory.mktemp("smoke")
    storage = f"sqlite:///{root}/s.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HPSEARCH_CACHE", str(root / "cache"))
        res = invoke(
            "run",
            "--study",
            "smoke",
            "--data",
            synth_data,
            "--storage",
            storage,
            "--n-trials",
            N_TRIALS,
            "--out",
            root / "runs",
        )
    assert res.exit_code == 0, res.output
    return {"root": root, "storage": storage, "output": res.output, "data": synth_data}


def load(storage: str | optuna.storages.BaseStorage, name: str = "smoke") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=storage)


def test_every_trial_is_recorded_with_curves_attrs_and_artifact(smoke_run: dict) -> None:
    storage = optuna.storages.get_storage(smoke_run["storage"])
    study = load(storage)
    study_id = storage.get_study_id_from_name("smoke")
    trials = study.get_trials()
    assert len(trials) == N_TRIALS
    states = {t.state for t in trials}
    assert states <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    assert any(t.state == optuna.trial.TrialState.PRUNED for t in trials), "the median pruner pruned nothing"
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert complete
    store_dir = Path(smoke_run["root"]) / "s-artifacts"
    for t in complete:
        ua = t.user_attrs
        assert len(t.intermediate_values) == ua["epochs_run"] == len(ua["history"])
        assert (
            t.value
            == pytest.approx(ua["best_val_dice"])
            == pytest.approx(max(t.intermediate_values.values()))
        )
        assert 0 <= ua["best_val_iou"] <= ua["best_val_dice"] <= 1
        for key in ("config", "manifest", "wall_time_s", "train_img_per_s", "device", "checkpoint", "seed"):
            assert key in ua, key
        assert ua["seed"] == t.number  # study seed 0 + trial number
        assert Path(ua["checkpoint"]).is_file()
        metas = optuna.artifacts.get_all_artifact_meta(t, storage=storage)
        assert {m.filename for m in metas} == {"val_worst.png", "curves.png"}
        for m in metas:
            assert (store_dir / m.artifact_id).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for t in trials:
        if t.state == optuna.trial.TrialState.PRUNED:
            assert t.user_attrs["prune_reason"].startswith("pruned at epoch")
            assert len(t.user_attrs["history"]) == len(t.intermediate_values)
            # A pruned trial shows its curves so far and a note, as a finished one does.
            metas = optuna.artifacts.get_all_artifact_meta(t, storage=storage)
            assert {m.filename for m in metas} == {"curves.png"}
            assert t.user_attrs["artifacts"] == {"curves": metas[0].artifact_id}
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
            note = get_note(optuna.Trial(study, trial_id))
            assert note.startswith("**PRUNED**") and "Searched values: `train." in note
    spec = json.loads(study.user_attrs["hpsearch_spec"])
    assert spec["name"] == "smoke" and study.user_attrs["data_split_hash"]


def test_rerun_resumes_and_budget_is_total(smoke_run: dict, invoke) -> None:
    args = [
        "run",
        "--study",
        "smoke",
        "--data",
        smoke_run["data"],
        "--storage",
        smoke_run["storage"],
        "--out",
        smoke_run["root"] / "runs",
    ]
    again = invoke(*args, "--n-trials", N_TRIALS)
    assert again.exit_code == 0, again.output
    assert "resuming" in again.output
    assert len(load(smoke_run["storage"]).trials) == N_TRIALS  # budget already spent: nothing new
    more = invoke(*args, "--n-trials", N_TRIALS + 1)
    assert more.exit_code == 0, more.output
    assert len(load(smoke_run["storage"]).trials) == N_TRIALS + 1


def test_resume_with_changed_space_is_refused_unless_forced(smoke_run: dict, tmp_path: Path, invoke) -> None:
    from hpsearch.search.spec import builtin_studies

    spec = yaml.safe_load(builtin_studies()["smoke"].read_text())
    spec["space"]["train.lr"]["high"] = 0.5
    path = tmp_path / "smoke_changed.yaml"
    path.write_text(yaml.safe_dump(spec))
    args = [
        "run",
        "--study",
        path,
        "--study-name",
        "smoke",
        "--data",
        smoke_run["data"],
        "--storage",
        smoke_run["storage"],
        "--n-trials",
        0,
    ]
    res = invoke(*args)
    assert res.exit_code == 1 and "search space" in res.output and "--force" in res.output
    assert invoke(*args, "--force").exit_code == 0


def test_export_then_train_reproduces_the_best_trial(smoke_run: dict, tmp_path: Path, invoke) -> None:
    study = load(smoke_run["storage"])
    best = study.best_trial
    out = tmp_path / "best.yaml"
    res = invoke("export", "--study", "smoke", "--storage", smoke_run["storage"], "--out", out)
    assert res.exit_code == 0, res.output
    exported = yaml.safe_load(out.read_text())
    assert exported["provenance"]["trial"] == best.number
    res = invoke("train", "--config", out, "--out", tmp_path / "retrain")
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "retrain/metrics.json").read_text())
    # Same seed, same data, same code path on the CPU: the retrained run matches the trial.
    assert metrics["best_val_dice"] == pytest.approx(best.value, abs=1e-4)
    assert metrics["best_epoch"] == best.user_attrs["best_epoch"]


def test_evaluate_writes_metrics_csv_and_gallery(smoke_run: dict, tmp_path: Path, invoke) -> None:
    best = load(smoke_run["storage"]).best_trial
    res = invoke(
        "evaluate",
        "--checkpoint",
        best.user_attrs["checkpoint"],
        "--data",
        smoke_run["data"],
        "--out",
        tmp_path,
        "--split",
        "test",
    )
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "metrics.json").read_text())
    rows = (tmp_path / "per_case.csv").read_text().strip().splitlines()
    assert m["n"] == len(rows) - 1 > 0
    dice = [float(r.split(",")[1]) for r in rows[1:]]
    assert m["dice_mean"] == pytest.approx(sum(dice) / len(dice), abs=1e-5)
    assert m["iou_mean"] <= m["dice_mean"]
    assert (tmp_path / "worst.png").read_bytes()[:4] == b"\x89PNG"
    # The test split is exactly the sealed part of the run's split.
    from hpsearch.data.check import verify_dataset
    from hpsearch.data.splits import make_split

    split = make_split(verify_dataset(smoke_run["data"]), val_fraction=0.2, test_fraction=0.15, seed=0)
    assert sorted(r.split(",")[0] for r in rows[1:]) == sorted(split.test)


def _small_study(tmp_path: Path, synth_data: Path, n: int) -> tuple[str, list[str]]:
    storage = f"sqlite:///{tmp_path}/f.db"
    return storage, [
        "run",
        "--study",
        "smoke",
        "--data",
        str(synth_data),
        "--storage",
        storage,
        "--n-trials",
        str(n),
        "--out",
        str(tmp_path / "runs"),
        "--max-epochs",
        "1",
    ]


def test_non_finite_loss_prunes_and_oom_fails_and_the_study_goes_on(
    tmp_path: Path, synth_data: Path, monkeypatch: pytest.MonkeyPatch, invoke
) -> None:
    import hpsearch.search.objective as objective

    real = objective.train_from_config
    calls = {"n": 0}
    released: list[str] = []

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise NonFiniteLossError("non-finite training loss at epoch 1", epoch=1, step=3)
        if calls["n"] == 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if calls["n"] == 3:
            raise ValueError("something else broke")
        return real(*args, **kwargs)

    monkeypatch.setattr(objective, "train_from_config", flaky)
    monkeypatch.setattr(objective, "release_memory", lambda dev: released.append(str(dev)))
    storage, args = _small_study(tmp_path, synth_data, 4)
    res = invoke(*args)
    assert res.exit_code == 0, res.output
    t = load(storage).trials
    assert [x.state.name for x in t] == ["PRUNED", "FAIL", "FAIL", "COMPLETE"]
    assert "non-finite" in t[0].user_attrs["prune_reason"]
    assert t[1].user_attrs["fail_reason"] == "oom"
    assert released, "memory was not released after the OOM"
    assert t[2].user_attrs["fail_reason"] == "ValueError: something else broke"


BAD_STUDIES = {
    "syntax": "name: x\nspace: {train.lr: {type: float, low: 1\n",
    "unknown key": "name: x\nspacee: {}\n",
    "wrong type": "name: x\nbudget: {n_trials: lots}\n",
    "low > high": "name: x\nspace: {train.lr: {type: float, low: 0.1, high: 0.01}}\n",
    "empty choices": "name: x\nspace: {train.batch_size: {type: categorical, choices: []}}\n",
    "unknown param": "name: x\nspace: {train.lrate: {type: float, low: 0.1, high: 1}}\n",
    "unknown model": "name: x\nfixed: {model: {name: vit}}\n",
    "unknown loss": "name: x\nspace: {train.loss: {type: categorical, choices: [bce, hinge]}}\n",
    "unknown preset": "name: x\nfixed: {data: {augmentation: extreme}}\n",
}


@pytest.mark.parametrize("case", sorted(BAD_STUDIES))
def test_bad_study_files_give_one_line_and_write_nothing(
    case: str, tmp_path: Path, synth_data: Path, invoke
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_STUDIES[case])
    db = tmp_path / "bad.db"
    res = invoke("run", "--study", path, "--data", synth_data, "--storage", f"sqlite:///{db}")
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output and res.output.strip().count("\n") <= 2, res.output
    assert str(path) in res.output
    assert not db.exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--study", "nope"], "unknown study 'nope'; expected one of: architecture"),
        (["--study", "smoke", "--data", "/does/not/exist"], "does not exist"),
        (["--study", "smoke", "--n-trials", "-3"], "--n-trials must be >= 0"),
        (["--study", "smoke", "--set", "model.name=vit"], "unknown model 'vit'"),
        (["--study", "smoke", "--set", "train.loss=hinge"], "unknown loss 'hinge'"),
        (["--study", "smoke", "--set", "data.augmentation=x"], "unknown augmentation preset 'x'"),
    ],
)
def test_bad_cli_input_gives_one_line_exit_1_and_writes_nothing(
    args: list[str], expected: str, tmp_path: Path, synth_data: Path, invoke
) -> None:
    db = tmp_path / "x.db"
    if "--data" not in args:
        args = [*args, "--data", str(synth_data)]
    res = invoke("run", *args, "--storage", f"sqlite:///{db}")
    assert res.exit_code == 1, res.output
    assert expected in " ".join(res.output.split()), res.output
    assert "Traceback" not in res.output
    assert not db.exists()


def test_studies_lists_shipped_files(invoke) -> None:
    res = invoke("studies")
    assert res.exit_code == 0
    for name in ("lr_batch", "optimizer", "loss", "augmentation", "architecture", "full", "smoke"):
        assert name in res.output


def test_max_epochs_caps_what_trains_and_the_config_stored_and_exported_says_so(
    tmp_path: Path, synth_data: Path, invoke
) -> None:
    """smoke fixes train.epochs at 4; a cap of 2 must be what trains, what the trial stores and exports."""
    url = f"sqlite:///{tmp_path}/cap.db"
    res = invoke("run", "--study", "smoke", "--data", synth_data, "--storage", url, "--n-trials", 1,
                 "--out", tmp_path / "runs", "--max-epochs", 2, "--set", "train.gallery_k=0")
    assert res.exit_code == 0, res.output
    [trial] = load(url).trials
    assert trial.state == optuna.trial.TrialState.COMPLETE  # the median pruner never prunes trial 0
    stored = trial.user_attrs[keys.CONFIG]
    assert stored["train"]["epochs"] == 2 == trial.user_attrs[keys.EPOCHS_RUN]
    assert len(trial.intermediate_values) == 2
    trained = json.loads((tmp_path / "runs/smoke/trial_0000/metrics.json").read_text())
    assert trained["config"]["train"]["epochs"] == 2 and len(trained["history"]) == 2
    out = tmp_path / "best.yaml"
    assert invoke("export", "--storage", url, "--out", out).exit_code == 0
    assert yaml.safe_load(out.read_text())["train"]["epochs"] == 2


def _study_searching_epochs(tmp_path: Path) -> Path:
    from hpsearch.search.spec import builtin_studies

    spec = yaml.safe_load(builtin_studies()["smoke"].read_text())
    spec["space"]["train.epochs"] = {"type": "int", "low": 1, "high": 3}
    path = tmp_path / "epochs.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.parametrize("command", ["run", "worker"])
@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (["--max-epochs", "2"], "--max-epochs 2 would cap the training length, which this study searches"),
        (["--set", "train.lr=0.01"], "--set train.lr would replace what the search samples"),
    ],
    ids=["cap", "set"],
)
def test_a_cap_or_set_on_a_sampled_value_is_refused_before_any_study_exists(
    command: str, option: list[str], expected: str, tmp_path: Path, synth_data: Path, invoke
) -> None:
    db = tmp_path / "refused.db"
    res = invoke(command, "--study", _study_searching_epochs(tmp_path), "--data", synth_data,
                 "--storage", f"sqlite:///{db}", "--out", tmp_path / "runs", *option)
    assert res.exit_code == 1, res.output
    assert expected in " ".join(res.output.split()) and "Traceback" not in res.output
    assert not db.exists() and not (tmp_path / "runs").exists()
