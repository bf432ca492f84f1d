"""The dashboard note of a trial: what differs from the study's fixed part, and how the trial ended."""

from __future__ import annotations

from hpsearch.search.notes import config_differences, trial_note
from hpsearch.training.config import resolve_run_config


def test_differences_are_the_sampled_and_overridden_paths_only() -> None:
    fixed = {"model": {"name": "unet"}, "train": {"loss": "bce"}}
    ref = resolve_run_config(fixed).model_dump(mode="json")
    trial = resolve_run_config(
        fixed, params={"train.lr": 0.003, "train.batch_size": 16}, seed=7, data_path="/d"
    ).model_dump(mode="json")
    assert config_differences(trial, ref) == {"train.batch_size": 16, "train.lr": 0.003}


def test_a_pruned_trial_says_why_and_where() -> None:
    note = trial_note(
        state="PRUNED", metric="val_dice", differences={"train.lr": 0.01}, best_value=0.41234,
        best_epoch=3, epochs_run=6, epochs=25, wall_s=95, reason="pruned at epoch 6 with val_dice=0.40",
    )
    head = "**PRUNED** · best val_dice 0.4123 at epoch 3 · ran 6/25 epochs · wall 1m35s"
    assert note.splitlines()[0] == head
    assert "Pruned: pruned at epoch 6" in note and "`train.lr=0.01`" in note


def test_a_long_list_is_cut_and_counted() -> None:
    diffs = {f"train.k{i:02d}": i for i in range(15)}
    note = trial_note(state="COMPLETE", metric="val_dice", differences=diffs)
    assert "`train.k11=11`" in note and "`train.k12=12`" not in note and "and 3 more" in note
    assert "unchanged" in trial_note(state="COMPLETE", metric="val_dice", differences={})


def test_searched_values_are_named_so_and_other_differences_apart() -> None:
    note = trial_note(
        state="COMPLETE", metric="val_dice", searched={"train.lr": 0.003, "train.batch_size": 16},
        differences={"train.lr": 0.003, "train.batch_size": 16, "train.epochs": 2},
    )
    assert "Searched values: `train.lr=0.003`, `train.batch_size=16`" in note
    assert "Other settings that differ from the study's fixed ones: `train.epochs=2`" in note
    assert "unchanged" not in note
    lr = {"train.lr": 0.1}
    why = "interrupted (Ctrl-C)"
    only = trial_note(state="FAIL", metric="val_dice", searched=lr, differences=lr, reason=why)
    assert "Searched values: `train.lr=0.1`" in only and "Other settings" not in only
    assert "Why: interrupted (Ctrl-C)" in only
