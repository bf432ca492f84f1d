"""Tests for hpsearch.results.report on small hand-made studies whose numbers are known exactly."""

from __future__ import annotations

import json
import math
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from hpsearch.results.report import write_report
from hpsearch.results.report_data import build_report, cost_to_target, format_value
from hpsearch.results.report_md import render_markdown
from hpsearch.search import keys

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPEC = {
    "name": "tiny",
    "metric": "val_dice",
    "space": {
        "train.lr": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
        "train.batch_size": {"type": "categorical", "choices": [4, 8, 16]},
        "train.optimizer": {"type": "categorical", "choices": ["adam", "sgd"]},
        "train.momentum": {"type": "float", "low": 0.8, "high": 0.99, "when": {"train.optimizer": "sgd"}},
        "model.kwargs.base_width": {"type": "int", "low": 8, "high": 32, "step": 8},
    },
}
DISTS = {
    "train.lr": FloatDistribution(1e-5, 1e-2, log=True),
    "train.batch_size": CategoricalDistribution([4, 8, 16]),
    "train.optimizer": CategoricalDistribution(["adam", "sgd"]),
    "train.momentum": FloatDistribution(0.8, 0.99),
    "model.kwargs.base_width": IntDistribution(8, 32, step=8),
}
T0 = datetime(2025, 1, 1, 12, 0, 0)


def history(dice: list[float], epoch_s: float) -> list[dict[str, float]]:
    """Per-epoch records as fit() writes them; each epoch takes epoch_s (train 0.75, val 0.25)."""
    return [
        {
            "epoch": i + 1,
            "train_loss": 0.5,
            "val_loss": 0.5,
            "val_dice": d,
            "val_iou": d - 0.1,
            "val_micro_dice": d,
            "lr": 1e-3,
            "train_time_s": 0.75 * epoch_s,
            "val_time_s": 0.25 * epoch_s,
            "train_img_per_s": 100.0,
        }
        for i, d in enumerate(dice)
    ]


def add(
    study: optuna.Study,
    state: TrialState,
    params: dict[str, Any],
    dice: list[float],
    *,
    done_min: float,
    wall: float | None,
    epoch_s: float = 10.0,
    attrs: bool = True,
) -> None:
    """One finished trial with the attrs objective.py records; finishes ``done_min`` minutes after T0."""
    user: dict[str, Any] = {}
    if attrs:
        user = {"history": history(dice, epoch_s), "epochs_run": len(dice), "device": "cpu", "seed": 0}
        if wall is not None:
            user["trial_wall_s"] = wall
    if state == TrialState.COMPLETE and attrs:
        best = max(dice)
        user.update(
            best_val_dice=best,
            best_val_iou=best - 0.1,
            best_epoch=dice.index(best) + 1,
            wall_time_s=(wall or 0) - 2,
            train_img_per_s=123.4,
            peak_memory_mb=2048.0,
        )
    if state == TrialState.PRUNED:
        user["prune_reason"] = f"pruned at epoch {len(dice)}"
    trial = optuna.create_trial(
        state=state,
        value=max(dice) if state == TrialState.COMPLETE else None,
        params=params,
        distributions={k: DISTS[k] for k in params},
        user_attrs=user,
        intermediate_values={i + 1: v for i, v in enumerate(dice)},
    )
    trial.datetime_complete = T0 + timedelta(minutes=done_min)
    # Without trial_wall_s the report falls back to start -> complete; make that 300 s.
    trial.datetime_start = trial.datetime_complete - timedelta(seconds=300)
    study.add_trial(trial)


def p(
    lr: float, bs: int, opt: str = "adam", width: int = 16, momentum: float | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"train.lr": lr, "train.batch_size": bs, "train.optimizer": opt}
    if momentum is not None:
        out["train.momentum"] = momentum
    out["model.kwargs.base_width"] = width
    return out


def build_study(db: Path) -> None:
    """Trials listed in number order; completion order differs (trial 2 finishes first)."""
    study = optuna.create_study(storage=f"sqlite:///{db}", study_name="tiny", direction="maximize")
    study.set_user_attr(keys.SPEC, json.dumps(SPEC))
    study.set_user_attr(keys.DATA_SPLIT_HASH, "0123456789abcdef")
    study.set_user_attr(keys.VERSION, "0.1.0")
    study.set_user_attr(keys.BUDGET_N_TRIALS, 8)
    C, P, F = TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL
    # trial 0: completes second; reaches 0.6 at epoch 2 and 0.7 at epoch 3.
    add(study, C, p(1e-3, 8), [0.4, 0.6, 0.7], done_min=20, wall=40.0)
    # trial 1: the best; completes fourth; 0.8 at epoch 2, 0.85 at epoch 3.
    add(study, C, p(1.234e-4, 16, "sgd", 32, momentum=0.9), [0.5, 0.8, 0.85], done_min=40, wall=50.0)
    # trial 2: completes first, reaches 0.5 at epoch 2; no trial_wall_s -> 300 s from the datetimes.
    add(study, C, p(5e-3, 4, width=8), [0.3, 0.5, 0.55], done_min=10, wall=None)
    # trial 3: pruned third, after 2 epochs, never above 0.45.
    add(study, P, p(1e-2, 4), [0.1, 0.45], done_min=30, wall=25.0)
    # trial 4: failed last; counts in compute time but it is after every crossing.
    add(study, F, p(1e-5, 8), [], done_min=50, wall=5.0)
    study.enqueue_trial({})  # an unclaimed budget ticket


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once: creating an Optuna schema costs far more than copying the file."""
    db = tmp_path_factory.mktemp("template") / "study.db"
    build_study(db)
    return db


def make_study(tmp_path: Path, template: Path) -> tuple[optuna.Study, str]:
    """A private copy of the template study."""
    shutil.copyfile(template, tmp_path / "study.db")
    url = f"sqlite:///{tmp_path / 'study.db'}"
    return optuna.load_study(study_name="tiny", storage=url), url


def test_cost_to_target_exact_numbers(tmp_path: Path, template: Path) -> None:
    study, _ = make_study(tmp_path, template)
    rows = {r["threshold"]: r for r in cost_to_target(study.get_trials())}
    # Completion order: 2 (300 s via datetimes), 0 (40 s), 3 (25 s), 1 (50 s), 4 (5 s); 10 s per epoch.
    assert rows[0.5]["compute_s"] == pytest.approx(20.0)  # trial 2, epochs 1-2
    assert (rows[0.5]["trial"], rows[0.5]["epoch"]) == (2, 2)
    assert rows[0.6]["compute_s"] == pytest.approx(300 + 20)  # all of trial 2, trial 0 up to epoch 2
    assert rows[0.7]["compute_s"] == pytest.approx(300 + 30)
    assert rows[0.8]["compute_s"] == pytest.approx(300 + 40 + 25 + 20)  # trial 1 epoch 2
    assert rows[0.85]["compute_s"] == pytest.approx(300 + 40 + 25 + 30)
    assert (rows[0.85]["trial"], rows[0.85]["epoch"]) == (1, 3)
    assert rows[0.9] == {"threshold": 0.9, "reached": False, "compute_s": None, "trial": None, "epoch": None}


def test_cost_to_target_without_history_uses_a_proportional_share(tmp_path: Path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", direction="maximize")
    add(study, TrialState.COMPLETE, p(1e-3, 8), [0.2, 0.4, 0.6, 0.8], done_min=1, wall=None, attrs=False)
    rows = {r["threshold"]: r for r in cost_to_target(study.get_trials())}
    assert rows[0.6]["compute_s"] == pytest.approx(300 * 3 / 4)  # epoch 3 of 4, 300 s from datetimes
    assert rows[0.6]["basis"] == "proportional"


def test_report_numbers(tmp_path: Path, template: Path) -> None:
    study, url = make_study(tmp_path, template)
    data = build_report(study, url)
    assert data["counts"] == {"COMPLETE": 3, "PRUNED": 1, "FAIL": 1, "RUNNING": 0, "WAITING": 1, "total": 6}
    by_state = data["time"]["by_state"]
    assert by_state["COMPLETE"]["seconds"] == pytest.approx(40 + 50 + 300)
    assert by_state["PRUNED"]["seconds"] == pytest.approx(25)
    assert by_state["FAIL"]["seconds"] == pytest.approx(5)
    assert data["time"]["pruned_share"] == pytest.approx(25 / 420)
    assert data["best"]["number"] == 1
    rows = {r["name"]: r for r in data["parameters"]}
    assert list(rows) == list(SPEC["space"])  # spec order
    assert rows["train.lr"] == {
        "name": "train.lr",
        "range": "1e-05 .. 0.01 (log)",
        "optimal": "1.23e-04",
        "value": pytest.approx(1.234e-4),
        "range_from": "spec",
    }
    assert rows["train.batch_size"]["range"] == "{4, 8, 16}" and rows["train.batch_size"]["optimal"] == "16"
    assert rows["train.momentum"]["optimal"] == "0.9"
    assert rows["model.kwargs.base_width"]["range"] == "8 .. 32 step 8"
    assert data["cost_to_target"]["devices"] == ["cpu"]


def test_write_report_files(tmp_path: Path, template: Path) -> None:
    study, url = make_study(tmp_path, template)
    md = write_report(url, "tiny", tmp_path / "rep")
    text = md.read_text()
    assert "| Hyperparameter | Range tested | Optimal value |" in text
    assert "| `train.lr` | 1e-05 .. 0.01 (log) | 1.23e-04 |" in text
    assert "| PRUNED | 1 |" in text and "| WAITING | 1 |" in text
    assert "| 0.90 | not reached | — |" in text
    assert "| 0.50 | 20.0 s | trial 2, epoch 2 |" in text
    assert "| 0.60 | 5m 20s (320 s) | trial 0, epoch 2 |" in text
    assert "Pruned trials used 6.0% of the compute" in text
    assert "| Val Dice | 0.8500 |" in text and "| Device | cpu |" in text
    for png in ("history.png", "importance.png", "intermediate.png"):
        assert f"]({png})" in text
        assert (tmp_path / "rep" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert data["best"]["value"] == pytest.approx(0.85)
    assert set(data["importances"]) == set(DISTS)
    assert math.isclose(sum(data["importances"].values()), 1.0)
    # The storage and the best trial's files are named relative to the report's folder.
    assert data["storage"] == "sqlite:///../study.db" and "sqlite:///../study.db" in text
    assert str(tmp_path) not in json.dumps(data) and str(tmp_path) not in text


def test_report_masks_the_storage_password(tmp_path: Path, template: Path) -> None:
    study, _ = make_study(tmp_path, template)
    data = build_report(study, "postgresql+psycopg://alice:s3cret@db:5432/hp")
    assert data["storage"] == "postgresql+psycopg://alice:***@db:5432/hp"
    assert "s3cret" not in json.dumps(data)


def test_importance_note_when_too_few_complete_trials(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'few.db'}"
    study = optuna.create_study(storage=url, study_name="few", direction="maximize")
    study.set_user_attr(keys.SPEC, json.dumps(SPEC))
    (tmp_path / "rep").mkdir()
    (tmp_path / "rep" / "importance.png").write_bytes(b"stale")  # from an earlier, bigger report
    add(study, TrialState.COMPLETE, p(1e-3, 8), [0.4, 0.6], done_min=1, wall=10.0)
    add(study, TrialState.PRUNED, p(1e-4, 4), [0.1], done_min=2, wall=5.0)
    text = write_report(url, "few", tmp_path / "rep").read_text()
    assert "Parameter importances not computed: 1 complete trial(s)" in text
    assert "](importance.png)" not in text
    assert not (tmp_path / "rep" / "importance.png").exists()
    assert (tmp_path / "rep" / "history.png").exists() and (tmp_path / "rep" / "intermediate.png").exists()


def test_importance_note_for_a_single_parameter(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'one.db'}"
    study = optuna.create_study(storage=url, study_name="one", direction="maximize")
    study.optimize(lambda t: t.suggest_float("train.lr", 1e-5, 1e-2, log=True), n_trials=6)
    text = write_report(url, "one", tmp_path / "rep").read_text()
    assert "1 parameter (train.lr), nothing to compare" in text
    # No stored spec (not an hpsearch study): the range comes from Optuna's distributions.
    assert "| `train.lr` | 1e-05 .. 0.01 (log) |" in text


def test_report_without_any_finished_trial(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    study = optuna.create_study(storage=url, study_name="empty", direction="maximize")
    study.set_user_attr(keys.SPEC, json.dumps(SPEC))
    study.enqueue_trial({})
    study.add_trial(optuna.create_trial(state=TrialState.RUNNING))
    text = write_report(url, None, tmp_path / "rep").read_text()  # None: the only study in the storage
    assert "No trial has completed yet" in text
    assert "| `train.lr` | 1e-05 .. 0.01 (log) | — |" in text
    assert "| RUNNING | 1 |" in text and "| WAITING | 1 |" in text
    assert "| 0.50 | not reached | — |" in text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.234e-3, "1.23e-03"),
        (0.25, "0.25"),
        (0.123456, "0.123"),
        (123456.0, "1.23e+05"),
        (16, "16"),
        (True, "True"),
        ("adam", "adam"),
        (None, "—"),
        (0.0, "0"),
    ],
)
def test_format_value(value: Any, text: str) -> None:
    assert format_value(value) == text


def test_markdown_regenerates_from_report_json(tmp_path: Path, template: Path) -> None:
    _, url = make_study(tmp_path, template)
    md = write_report(url, "tiny", tmp_path / "rep")
    data = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert render_markdown(data) == md.read_text()  # report.md needs nothing the JSON lacks
    headings = [line for line in md.read_text().splitlines() if line.startswith("## ")]
    assert headings == [
        "## Hyperparameters",
        "## Best trial",
        "## Trials",
        "## Compute time",
        "## Cost to target",
        "## Plots",
    ]


def test_minimizing_study_ranks_low_first_and_skips_cost_to_target(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'min.db'}"
    study = optuna.create_study(storage=url, study_name="min", direction="minimize")
    add(study, TrialState.COMPLETE, p(1e-3, 8), [0.4], done_min=1, wall=10.0)
    add(study, TrialState.COMPLETE, p(1e-4, 4), [0.2], done_min=2, wall=10.0)
    add(study, TrialState.PRUNED, p(1e-2, 16), [0.1, 0.9], done_min=3, wall=10.0)
    data = build_report(study, url)
    assert [t["number"] for t in data["top_trials"]] == [1, 0]
    assert data["cost_to_target"]["thresholds"] == []
    assert data["cost_to_target"]["note"] == "not applicable: the study minimizes its metric"
    pruned = data["trials"][2]
    assert pruned["best_intermediate"] == pytest.approx(0.1)  # the lowest value reported, not the last
    assert pruned["reason"] == "pruned at epoch 2" and pruned["compute_s"] == pytest.approx(10.0)
    text = write_report(url, "min", tmp_path / "rep").read_text()
    assert "- **Objective:** minimize `val_dice`" in text
    assert "not applicable: the study minimizes its metric" in text and "| Target" not in text


@pytest.mark.parametrize("n_complete", [0, 1, 3])
def test_plots_read_right_with_0_1_or_many_finished_trials(tmp_path: Path, n_complete: int) -> None:
    from hpsearch.results.plots import history_figure, intermediate_figure

    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(storage=url, study_name="few", direction="maximize")
    study.set_user_attr(keys.SPEC, json.dumps(SPEC))
    lr = {"train.lr": FloatDistribution(1e-5, 1e-2, log=True)}
    hw = {keys.DEVICE: "CPU (Test CPU, 2 threads)", keys.HARDWARE: {"cpu": "Test CPU", "cores": 2}}
    # A pruned trial whose best value is 0 (as a first epoch of an untrained model can be).
    study.add_trial(optuna.create_trial(state=TrialState.PRUNED, params={"train.lr": 1e-3}, distributions=lr,
                                        intermediate_values={1: 0.0}, user_attrs=hw))  # fmt: skip
    for i in range(n_complete):
        curve = {1: 0.4, 2: 0.5 + 0.1 * i}
        study.add_trial(optuna.create_trial(value=curve[2], params={"train.lr": 1e-4}, distributions=lr,
                                            intermediate_values=curve, user_attrs=hw))  # fmt: skip
    study.enqueue_trial({})  # a budget ticket: not a trial on the axis

    ax = history_figure(study).axes[0]
    assert ax.get_ylim() == (0, 1.02)  # not +-0.05 around one point
    assert ax.get_xlim() == (-0.5, max(n_complete, 1) + 0.5)  # the trials that ran, the ticket left out
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert ("best so far" in labels) == (n_complete > 0) and "pruned (best before pruning)" in labels
    assert ax.get_ylabel() == "val_dice (each trial's best epoch)"
    per_epoch = intermediate_figure(study).axes[0]
    assert per_epoch.get_ylabel() == "best val_dice so far (validation)" and per_epoch.get_ylim() == (0, 1.02)
    assert "best val_dice so far" in per_epoch.get_title()
    text = render_markdown(build_report(study, "sqlite:///s.db"))
    assert "**hardware:** CPU (Test CPU, 2 threads); CPU Test CPU (2 cores)" in text
