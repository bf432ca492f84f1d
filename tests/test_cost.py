"""The study cost estimate: representative trial, trial lengths, study time and the plain warning."""

from __future__ import annotations

import pytest

from hpsearch.search.cost import StudyCost, describe, epoch_choices, fit_hints, representative_params
from hpsearch.search.spec import load_study_spec
from hpsearch.training.estimate import CostEstimate


def _cost(s_per_step: float) -> CostEstimate:
    return CostEstimate(device="cpu", batch_size=8, image_size=96, n_train=800, n_val=88,
                        s_per_step=s_per_step, val_s=4.0)


def test_the_representative_trial_is_the_middle_of_every_range() -> None:
    spec = load_study_spec("lr_batch")
    params = representative_params(spec.space)
    assert params["train.batch_size"] == 8 and params["train.epochs"] == 50
    assert params["train.lr"] == pytest.approx(1e-3)  # geometric middle of 1e-4 .. 1e-2


def test_conditional_parameters_follow_their_condition() -> None:
    spec = load_study_spec("architecture")
    params = representative_params(spec.space)
    assert ("model.kwargs.attention_decoder" in params) == (params["model.name"] == "cbam_unet")


def test_trial_lengths_come_from_the_space_or_the_fixed_part() -> None:
    assert epoch_choices(load_study_spec("lr_batch"), 25) == [25, 50, 100]
    assert epoch_choices(load_study_spec("full"), 80) == [80]


def test_study_time_is_trials_times_mean_length_over_workers_capped_by_the_timeout() -> None:
    cost = _cost(0.5)  # 100 steps: 50 s + 4 s validation = 54 s an epoch
    assert cost.s_per_epoch == pytest.approx(54.0)
    study = StudyCost(cost, [25, 50, 100], n_trials=30, timeout_s=None, workers=2)
    assert study.longest_trial_s == pytest.approx(5400.0)
    assert study.unpruned_study_s == pytest.approx(30 * 59 * 54.0 / 2)  # mean 58.3 epochs, rounded up
    assert StudyCost(cost, [25], n_trials=30, timeout_s=3600.0).expected_s == 3600.0


def test_a_study_of_days_says_so_and_how_to_make_it_fit() -> None:
    slow = StudyCost(_cost(20.0), [25, 50, 100], n_trials=30, timeout_s=None)
    hints = fit_hints(device_type="cpu", scale="full", epochs_searched=True)
    text = "\n".join(describe(slow, scale="full", hint_flags=hints))
    assert "(days)" in text and "--scale laptop" in text and "a GPU" in text and "you decide" in text
    quick = StudyCost(_cost(0.05), [25], n_trials=4, timeout_s=None)
    assert "days" not in "\n".join(describe(quick, scale="laptop", hint_flags=hints))
    assert "--max-epochs" in " ".join(fit_hints(device_type="cuda", scale="laptop", epochs_searched=False))
