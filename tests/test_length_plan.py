"""The training length as the pruner's resource: the plan (rungs, top, final length), sized to the budget;
a study that runs on it; the export of a budget-stopped search; and the search benchmark's small version."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import yaml

from hpsearch.errors import ConfigError
from hpsearch.search import keys
from hpsearch.search import objective as objective_module
from hpsearch.search.plan import ResourceSpec, budget_plan, default_plan, ladder, stored_plan
from hpsearch.search.spec import builtin_studies, load_study_spec, parse_study

REPO = Path(__file__).resolve().parents[1]
LAPTOP_S_PER_EPOCH = [17.5, 16.0, 15.5]  # batch 4 / 8 / 16 at the laptop scale on the 2-core host


def test_rungs_are_geometric_below_the_top_and_the_first_is_not_too_short() -> None:
    r = ResourceSpec(min_epochs=3, reduction_factor=3)
    assert ladder(100, r).rungs() == [4, 12, 36]  # 4 * 27 >= 100: no rung just short of the top
    assert ladder(27, r).rungs() == [3, 9]
    assert ladder(18, r).rungs() == [6]  # 2 would be below min_epochs
    assert ladder(4, r).rungs() == []  # too short for any rung: the pruner never acts
    assert ladder(27, r).pruner_kwargs("hyperband") == {"min_resource": 3, "reduction_factor": 3,
                                                         "max_resource": 27}  # fmt: skip


def test_without_a_budget_the_study_keeps_its_length_and_max_epochs_shortens_it() -> None:
    spec = load_study_spec("lr_batch")
    assert spec.resource is not None
    full = default_plan(spec.resource, 100)
    assert (full.top, full.final, full.source, full.rungs()) == (100, 100, "study", [4, 12, 36])
    short = default_plan(spec.resource, 100, max_epochs=30)
    assert (short.top, short.final, short.source) == (30, 100, "--max-epochs")


def test_the_top_length_follows_the_time_budget() -> None:
    r = load_study_spec("lr_batch").resource
    assert r is not None
    tops = {}
    for hours in (0.5, 1, 8):
        plan = budget_plan(r, pruner_name="successive_halving", pruner_kwargs={}, study_epochs=100,
                           budget_s=hours * 3600, s_per_epoch=LAPTOP_S_PER_EPOCH)  # fmt: skip
        tops[hours] = plan.top
        assert plan.source == "--timeout" and plan.final == 100
    assert tops[0.5] <= tops[1] < tops[8] == 100
    # One hour at the laptop scale: 205 epochs of budget, far short of 4 trials of 100 epochs.
    assert 9 <= tops[1] <= 36


def _resource_study(data: dict) -> dict:
    return {**data, "resource": {"min_epochs": 1}, "pruner": {"name": "successive_halving"}}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"space": {"train.epochs": {"type": "int", "low": 1, "high": 3}}}, "cannot also be searched"),
        ({"pruner": {"name": "median"}}, "needs a pruner that stops trials at rungs"),
        ({"pruner": {"name": "successive_halving", "kwargs": {"min_resource": 2}}}, "from the study's plan"),
    ],
)
def test_a_resource_study_owns_the_length_and_the_rungs(change: dict, message: str) -> None:
    data = _resource_study(yaml.safe_load(builtin_studies()["smoke"].read_text()))
    for k, v in change.items():
        data[k] = {**data[k], **v} if k == "space" else v
    with pytest.raises(ConfigError, match=message):
        parse_study(data, source="s.yaml")


def _tiny_lr_batch(folder: Path, epochs: int = 9, final_schedule: str | None = None) -> Path:
    """lr_batch as shipped (space, sampler, pruner, resource), on a tiny model and synthetic data."""
    data = yaml.safe_load(builtin_studies()["lr_batch"].read_text())
    data["fixed"] = {
        "model": {"name": "unet", "kwargs": {"base_width": 4, "depth": 2}},
        "train": {"loss": "bce", "scheduler": "none", "epochs": epochs, "device": "cpu", "amp": False,
                  "max_steps_per_epoch": 1, "gallery_k": 0},
        "data": {"image_size": 64, "augmentation": "none", "val_fraction": 0.2, "test_fraction": 0.1},
    }  # fmt: skip
    # The final schedule is set here either way, so these tests do not follow the shipped study's choice.
    data["resource"] = {**data["resource"], "min_epochs": 1, "final_epochs": 20,
                        "final_schedule": final_schedule}  # fmt: skip
    data["budget"] = {"n_trials": 5}
    path = folder / "tiny_lr_batch.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_max_epochs_is_allowed_for_lr_batch_and_sets_the_top(
    tmp_path: Path, synth_data: Path, invoke
) -> None:
    storage = f"sqlite:///{tmp_path}/s.db"
    res = invoke("run", "--study", _tiny_lr_batch(tmp_path), "--data", synth_data, "--storage", storage,
                 "--out", tmp_path / "runs", "--max-epochs", 3, "--no-estimate")  # fmt: skip
    assert res.exit_code == 0, res.output
    study = optuna.load_study(study_name="lr_batch", storage=storage)
    plan = stored_plan(study.user_attrs)
    assert plan is not None and (plan.top, plan.source, plan.rungs()) == (3, "--max-epochs", [1])
    assert "length plan: top 3 epochs (from --max-epochs)" in " ".join(res.output.split())
    for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        assert t.user_attrs[keys.CONFIG]["train"]["epochs"] == 3 and t.user_attrs[keys.EPOCHS_RUN] == 3
    pruned = study.get_trials(states=(optuna.trial.TrialState.PRUNED,))
    assert pruned and all(t.user_attrs[keys.EPOCHS_RUN] == 1 for t in pruned)  # at the rung, never the top
    # The export of a search that ran shorter than the study's final length trains the final length.
    out = tmp_path / "best.yaml"
    assert invoke("export", "--storage", storage, "--out", out).exit_code == 0
    exported = yaml.safe_load(out.read_text())
    assert exported["train"]["epochs"] == 20 and exported["train"]["scheduler"] == "none"  # no final_schedule
    assert exported["provenance"]["searched_epochs"] == 3 and exported["provenance"]["final_epochs"] == 20
    rep = invoke("report", "--storage", storage, "--out", tmp_path / "rep")
    assert rep.exit_code == 0, rep.output
    text = (tmp_path / "rep" / "report.md").read_text()
    row = next(ln for ln in text.splitlines() if ln.startswith("| `train.epochs`"))
    assert "1, 3 (successive-halving rungs; top 3 from --max-epochs; final length 20)" in row
    assert " of 3" in row and "the export trains 20" in row


def test_a_final_schedule_anneals_the_lengthened_export_only(
    tmp_path: Path, synth_data: Path, invoke
) -> None:
    storage = f"sqlite:///{tmp_path}/s.db"
    study_file = _tiny_lr_batch(tmp_path, final_schedule="cosine")
    res = invoke("run", "--study", study_file, "--data", synth_data, "--storage", storage,
                 "--out", tmp_path / "runs", "--max-epochs", 3, "--no-estimate")  # fmt: skip
    assert res.exit_code == 0, res.output
    study = optuna.load_study(study_name="lr_batch", storage=storage)
    # The trials themselves trained the search's constant rate: the final schedule is for the export only.
    assert {t.user_attrs[keys.CONFIG]["train"]["scheduler"] for t in study.trials} == {"none"}
    out = tmp_path / "best.yaml"
    assert invoke("export", "--storage", storage, "--out", out).exit_code == 0
    exported = yaml.safe_load(out.read_text())
    assert (exported["train"]["epochs"], exported["train"]["scheduler"]) == (20, "cosine")
    prov = exported["provenance"]
    assert (prov["searched_scheduler"], prov["final_schedule"]) == ("none", "cosine")
    assert "annealed (cosine schedule)" in prov["length_note"]
    rep = invoke("report", "--storage", storage, "--out", tmp_path / "rep")
    assert rep.exit_code == 0, rep.output
    row = next(ln for ln in (tmp_path / "rep" / "report.md").read_text().splitlines()
               if ln.startswith("| `train.epochs`"))  # fmt: skip
    assert "the export trains 20 (the study's final length) with a cosine schedule" in row


def test_a_final_schedule_stays_out_of_the_fingerprint_and_must_anneal() -> None:
    data = yaml.safe_load(builtin_studies()["lr_batch"].read_text())
    data["resource"] = {**data["resource"], "final_schedule": None}
    before = parse_study(data, source="s.yaml").fingerprint()
    data["resource"]["final_schedule"] = "cosine"
    # A study stored before the setting was added still resumes with it.
    assert parse_study(data, source="s.yaml").fingerprint() == before
    data["resource"]["final_schedule"] = "none"
    with pytest.raises(ConfigError, match="final_schedule 'none' is not a schedule that anneals"):
        parse_study(data, source="s.yaml")
    # A plan stored before the field existed loads without it, and never changes the schedule.
    plan = stored_plan({keys.LENGTH_PLAN: '{"top": 9, "min_rung": 3, "reduction_factor": 3, "final": 100, '
                                          '"source": "--timeout"}'})  # fmt: skip
    assert plan is not None and plan.final_schedule is None and plan.final_scheduler("none", 9) == "none"
    annealing = ladder(9, ResourceSpec(min_epochs=3, final_epochs=100, final_schedule="cosine"))
    assert annealing.final_scheduler("none", 9) == "cosine"
    assert annealing.final_scheduler("plateau", 9) == "plateau"  # a searched schedule is kept
    assert annealing.final_scheduler("none", 100) == "none"  # not lengthened: the measured run as it was


def test_a_study_stopped_by_its_budget_leaves_an_exportable_best(
    tmp_path: Path, synth_data: Path, invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = f"sqlite:///{tmp_path}/s.db"
    # A one-hour budget that has run out by the end of the first epoch, whatever the machine's speed: the
    # trial's clock reads an hour later than the worker's (a real 1 s budget let a fast CI host finish all
    # 40 tiny epochs inside it). One ticket, so no second trial starts inside the real second.
    late = SimpleNamespace(perf_counter=time.perf_counter, monotonic=lambda: time.monotonic() + 3600)
    monkeypatch.setattr(objective_module, "time", late)
    res = invoke("run", "--study", _tiny_lr_batch(tmp_path, epochs=50), "--data", synth_data, "--storage",
                 storage, "--out", tmp_path / "runs", "--max-epochs", 40, "--timeout", 3600, "--n-trials", 1,
                 "--no-estimate")  # fmt: skip
    assert res.exit_code == 0, res.output
    study = optuna.load_study(study_name="lr_batch", storage=storage)
    assert not study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    stopped = [t for t in study.get_trials() if t.user_attrs.get(keys.STOPPED_BY) == "budget"]
    assert len(stopped) == 1 and stopped[0].state == optuna.trial.TrialState.PRUNED
    # The run's last word names what export will take, not just "no completed trial".
    assert f"exportable: trial {stopped[0].number} (stopped by the time budget after 1 epoch)" in res.output
    out = tmp_path / "best.yaml"
    exp = invoke("export", "--storage", storage, "--out", out)
    assert exp.exit_code == 0, exp.output
    prov = yaml.safe_load(out.read_text())["provenance"]
    assert prov["trial"] == stopped[0].number and prov["stopped_by"] == "budget"
    assert "stopped by it after" in prov["note"] and prov["value"] == stopped[0].user_attrs[keys.BEST_VALUE]


def test_the_new_search_beats_random_search_in_an_hour() -> None:
    """The search benchmark's small version (benchmarks/search_sim.py): at one simulated hour of the
    laptop scale, the shipped lr_batch design exports a better configuration than random search at equal
    budget, averaged over 8 seeded repeats (deterministic: same seeds, same result)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import search_sim

    summary = search_sim.compare(repeats=8, hours=(1.0,), designs=("new", "random"))
    new, rnd = summary["new@1h"], summary["random@1h"]
    assert new["configs_mean"] >= 2 * rnd["configs_mean"]
    assert new["true_mean"] > rnd["true_mean"], summary


def test_workers_of_a_created_study_share_the_plan_without_a_budget(
    tmp_path: Path, synth_data: Path, invoke
) -> None:
    storage = f"sqlite:///{tmp_path}/s.db"
    study_file = _tiny_lr_batch(tmp_path, epochs=4)
    assert invoke("create", "--study", study_file, "--data", synth_data, "--storage", storage).exit_code == 0
    study = optuna.load_study(study_name="lr_batch", storage=storage)
    assert stored_plan(study.user_attrs) is None  # decided by the first run or worker
    res = invoke("worker", "--study", study_file, "--data", synth_data, "--storage", storage, "--n-trials", 1,
                 "--out", tmp_path / "runs", "--quiet")  # fmt: skip
    assert res.exit_code == 0, res.output
    study = optuna.load_study(study_name="lr_batch", storage=storage)
    plan = stored_plan(study.user_attrs)
    assert plan is not None and (plan.top, plan.source) == (4, "study")
    (trial,) = [t for t in study.get_trials() if t.state.is_finished()]
    assert trial.user_attrs[keys.CONFIG]["train"]["epochs"] == 4
