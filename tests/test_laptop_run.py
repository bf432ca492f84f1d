"""A study as a new user meets it: the scale stored with it, the cost estimate first, a line per epoch in a
log, a note on every trial, and a wall-time budget that stops a running trial."""

from __future__ import annotations

import re
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna_dashboard import get_note

from hpsearch.search import keys

STUDY = {
    "name": "lap",
    "description": "laptop-scale test study",
    "metric": "val_dice",
    "direction": "maximize",
    "space": {"train.lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}},
    "fixed": {
        "model": {"name": "unet", "kwargs": {"base_width": 32, "depth": 2}},
        "train": {"epochs": 3, "batch_size": 4, "device": "cpu", "amp": False, "max_steps_per_epoch": 2},
        "data": {"image_size": 64, "augmentation": "none", "val_fraction": 0.2, "test_fraction": 0.1},
    },
    "sampler": {"name": "random", "seed": 0},
    "pruner": {"name": "none"},
    "budget": {"n_trials": 2},
}


def _study_file(folder: Path, **changes: object) -> Path:
    path = folder / "lap.yaml"
    path.write_text(yaml.safe_dump({**STUDY, **changes}))
    return path


@pytest.fixture(scope="module")
def laptop_run(tmp_path_factory: pytest.TempPathFactory, synth_data: Path, invoke) -> dict:
    root = tmp_path_factory.mktemp("laptop")
    storage = f"sqlite:///{root}/l.db"
    study = _study_file(root)
    res = invoke("run", "--study", study, "--data", synth_data, "--storage", storage, "--scale", "laptop",
                 "--out", root / "runs")
    assert res.exit_code == 0, res.output
    return {"root": root, "storage": storage, "study": study, "output": res.output, "data": synth_data}


def test_every_trial_trains_at_the_studys_scale(laptop_run: dict) -> None:
    study = optuna.load_study(study_name="lap", storage=laptop_run["storage"])
    assert study.user_attrs[keys.SCALE] == "laptop"
    for t in study.get_trials():
        cfg = t.user_attrs[keys.CONFIG]
        assert cfg["scale"] == "laptop" and cfg["model"]["kwargs"]["base_width"] == 32 // 4
        assert cfg["train"]["lr"] == t.params["train.lr"]  # the searched value is untouched by the scale
        assert t.user_attrs[keys.MANIFEST]["scale"] == "laptop"
    assert "scale: laptop" in laptop_run["output"]


def test_the_cost_estimate_comes_before_the_first_trial(laptop_run: dict) -> None:
    out = " ".join(laptop_run["output"].split())
    assert "cost estimate on CPU" in out and "at scale 'laptop'" in out
    assert "a trial: 3 epochs ≈" in out and "2 configurations (2-2) in its 2 trials, ≈" in out
    # It says that it is measuring before it does (no silent minute), and what it measured.
    first_epoch = out.index("trial 0 epoch 1/3")
    assert out.index("measuring what an epoch costs") < out.index("cost estimate") < first_epoch
    assert "5 timed windows" in out


def test_a_searched_model_is_measured_choice_by_choice(synth_data: Path, tmp_path: Path, invoke) -> None:
    space = {**STUDY["space"], "model.name": {"type": "categorical", "choices": ["unet", "cbam_unet"]}}
    study = _study_file(tmp_path, space=space, budget={"n_trials": 1})
    res = invoke("run", "--study", study, "--data", synth_data, "--storage", f"sqlite:///{tmp_path}/m.db",
                 "--scale", "laptop", "--out", tmp_path / "runs")  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "batch size × unet, cbam_unet" in res.output  # it says what it will time before it does
    line = next(x for x in res.output.splitlines() if "1 epoch at batch 4" in x)
    rates = re.findall(r"(unet|cbam_unet) ([0-9.]+) img/s", line.split("mean of")[1])
    assert [name for name, _ in rates] == ["unet", "cbam_unet"], line
    mean = float(re.search(r"at ([0-9.]+) img/s", line).group(1))
    # The step times are averaged, so the rate lies between the two measured ones.
    assert min(float(r) for _, r in rates) <= mean <= max(float(r) for _, r in rates), line


def test_a_log_gets_one_line_per_epoch(laptop_run: dict) -> None:
    lines = [ln for ln in laptop_run["output"].splitlines() if ln.startswith("trial ") and " epoch " in ln]
    expected = [f"trial {t} epoch {e}/3" for t in (0, 1) for e in (1, 2, 3)]
    assert [ln.split(" |")[0] for ln in lines] == expected
    # What train's lines carry: this epoch's Dice and the best so far, the pace, the time spent and left.
    assert all(re.search(r"\| val Dice \d\.\d{4} \(best \d\.\d{4}\) \|", ln) for ln in lines), lines
    assert all(all(w in ln for w in ("train loss", "img/s", "elapsed", "trial left ~")) for ln in lines)
    assert max(len(ln) for ln in lines) > 80  # a log line is never wrapped at 80 columns
    # Each trial's searched values, once, before its first epoch.
    out = laptop_run["output"].splitlines()
    study = optuna.load_study(study_name="lap", storage=laptop_run["storage"])
    for t in study.get_trials():
        started = [i for i, ln in enumerate(out) if ln.startswith(f"trial {t.number} started: ")]
        assert len(started) == 1 and f"lr={t.params['train.lr']:.3g}" in out[started[0]]
        assert started[0] < out.index(next(ln for ln in out if ln.startswith(f"trial {t.number} epoch 1/3")))


def test_each_trial_carries_a_dashboard_note(laptop_run: dict) -> None:
    storage = optuna.storages.get_storage(laptop_run["storage"])
    study = optuna.load_study(study_name="lap", storage=storage)
    study_id = storage.get_study_id_from_name("lap")
    for t in study.get_trials():
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        note = get_note(optuna.Trial(study, trial_id))
        assert note.startswith("**COMPLETE** · best val_dice") and "ran 3/3 epochs" in note
        assert f"`train.lr={t.params['train.lr']:.4g}`" in note
    assert study.metric_names == ["val_dice"]


def test_resuming_at_another_scale_is_refused(laptop_run: dict, invoke) -> None:
    res = invoke("run", "--study", laptop_run["study"], "--data", laptop_run["data"], "--storage",
                 laptop_run["storage"], "--n-trials", 3, "--out", laptop_run["root"] / "runs",
                 "--no-estimate")
    assert res.exit_code != 0
    out = " ".join(res.output.split())
    assert "cannot resume study 'lap' at scale 'full': its trials train at scale 'laptop'" in out
    assert "pass --scale laptop" in out
    forced = invoke("run", "--study", laptop_run["study"], "--data", laptop_run["data"], "--storage",
                    laptop_run["storage"], "--n-trials", 3, "--force", "--no-estimate")
    assert forced.exit_code == 1 and "its trials train at scale 'laptop'" in forced.output  # not even forced


def test_a_worker_follows_the_stored_scale(laptop_run: dict, invoke) -> None:
    res = invoke("create", "--study", laptop_run["study"], "--data", laptop_run["data"], "--storage",
                 laptop_run["storage"], "--n-trials", 3, "--scale", "laptop")
    assert res.exit_code == 0, res.output
    res = invoke("worker", "--study", "lap", "--data", laptop_run["data"], "--storage", laptop_run["storage"],
                 "--out", laptop_run["root"] / "runs", "--worker-index", 5)
    assert res.exit_code == 0, res.output
    study = optuna.load_study(study_name="lap", storage=laptop_run["storage"])
    mine = [t for t in study.get_trials() if t.user_attrs.get(keys.WORKER) == "5"]
    assert len(mine) == 1 and mine[0].user_attrs[keys.CONFIG]["scale"] == "laptop"


def test_the_export_retrains_at_its_scale(laptop_run: dict, invoke, tmp_path: Path) -> None:
    res = invoke("export", "--storage", laptop_run["storage"], "--study", "lap", "--out", tmp_path / "b.yaml")
    assert res.exit_code == 0, res.output
    exported = yaml.safe_load((tmp_path / "b.yaml").read_text())
    assert exported["scale"] == "laptop" and exported["model"]["kwargs"]["base_width"] == 8
    res = invoke("train", "--config", tmp_path / "b.yaml", "--out", tmp_path / "t", "--scale", "full")
    assert res.exit_code != 0 and "cannot be rescaled" in " ".join(res.output.split())


def test_a_spent_time_budget_stops_the_running_trial(synth_data: Path, tmp_path: Path) -> None:
    from hpsearch.search.lifecycle import TrialContext
    from hpsearch.search.objective import Objective
    from hpsearch.search.spec import parse_study

    spec = parse_study(STUDY, source="test")
    ctx = TrialContext(spec=spec, data_dir=synth_data, out_root=tmp_path, deadline=time.monotonic() - 1)
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    with pytest.raises(optuna.TrialPruned, match="stopped after epoch 1: the study's time budget ran out"):
        Objective(ctx)(trial)
    assert trial.user_attrs[keys.EPOCHS_RUN] == 1 and "time budget" in trial.user_attrs[keys.PRUNE_REASON]
    late = TrialContext(spec=spec, data_dir=synth_data, out_root=tmp_path, deadline=time.monotonic() + 3600)
    assert Objective(late)(study.ask()) > 0  # a budget not yet spent changes nothing


def test_the_report_states_the_scale_and_the_hardware(laptop_run: dict, invoke, tmp_path: Path) -> None:
    res = invoke("report", "--storage", laptop_run["storage"], "--study", "lap", "--out", tmp_path)
    assert res.exit_code == 0, res.output
    md = (tmp_path / "report.md").read_text()
    assert "**Scale:** laptop" in md and "CPU" in md and "cores" in md


def test_trials_differing_only_in_augmentation_share_one_decode(synth_data: Path, tmp_path: Path) -> None:
    from hpsearch.search.lifecycle import TrialContext
    from hpsearch.search.objective import Objective, build_trial_config
    from hpsearch.search.spec import parse_study

    spec = parse_study({**STUDY, "space": {"data.augmentation": {"type": "categorical",
                                                                 "choices": ["none", "basic"]}}}, source="t")
    objective = Objective(TrialContext(spec=spec, data_dir=synth_data, out_root=tmp_path))
    plain, flipped = (
        build_trial_config(objective.ctx, {"data.augmentation": a}, 0) for a in ("none", "basic")
    )
    assert objective.data_for(plain) is objective.data_for(flipped)
    bigger = build_trial_config(objective.ctx, {"data.augmentation": "none"}, 0)
    bigger.data.image_size = 32
    assert objective.data_for(bigger) is not objective.data_for(plain)


def test_trials_keep_the_epoch_of_the_studys_metric(synth_data: Path, tmp_path: Path) -> None:
    from hpsearch.search.lifecycle import TrialContext
    from hpsearch.search.objective import build_trial_config
    from hpsearch.search.spec import parse_study

    for metric in ("val_dice", "val_iou"):
        spec = parse_study({**STUDY, "metric": metric}, source="t")
        cfg = build_trial_config(TrialContext(spec=spec, data_dir=synth_data, out_root=tmp_path), {}, 0)
        assert cfg.train.monitor == metric


def test_train_without_a_terminal_writes_a_line_per_epoch(synth_data: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    cfg = {**STUDY["fixed"], "data": {**STUDY["fixed"]["data"], "path": str(synth_data)}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    # A real process with stderr to a file: what nohup, Slurm or Kubernetes give it.
    with open(tmp_path / "log", "w") as log:
        cmd = [sys.executable, "-m", "hpsearch", "train", "--config", str(tmp_path / "c.yaml"), "--out",
               str(tmp_path / "o")]
        res = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=300, check=False)
    text = (tmp_path / "log").read_text()
    assert res.returncode == 0, text
    epochs = [ln for ln in text.splitlines() if ln.startswith("train epoch ")]
    assert [ln.split(" |")[0] for ln in epochs] == ["train epoch 1/3", "train epoch 2/3", "train epoch 3/3"]
    assert all("img/s" in ln and "left ~" in ln for ln in epochs)
