"""The forecast printed before a study: representative trials, epoch costs, the replayed search, warnings."""

from __future__ import annotations

import optuna
import pytest

from hpsearch.search.cost import (
    StudyCost,
    batch_choices,
    cost_variants,
    describe,
    epoch_choices,
    epoch_seconds,
    fit_hints,
    mean_cost,
    representative_params,
)
from hpsearch.search.plan import ResourceSpec, ladder
from hpsearch.search.simulate import predict
from hpsearch.search.spec import load_study_spec, parse_study, study_pruner
from hpsearch.search.strategies import build_pruner
from hpsearch.training.estimate import CostEstimate


def _cost(s_per_step: float, batch: int = 8, spread: float = 0.1) -> CostEstimate:
    return CostEstimate(
        device="CPU",
        batch_size=batch,
        image_size=96,
        n_train=800,
        n_val=88,
        s_per_step=s_per_step,
        val_s=4.0,
        spread=spread,
        windows=5,
    )


def test_the_representative_trial_is_the_middle_of_every_range_or_pinned() -> None:
    spec = load_study_spec("lr_batch")
    params = representative_params(spec.space)
    assert params["train.batch_size"] == 8 and "train.epochs" not in params  # the length is the resource
    assert params["train.lr"] == pytest.approx(1e-3)  # geometric middle of 1e-4 .. 1e-2
    assert representative_params(spec.space, **{"train.batch_size": 16})["train.batch_size"] == 16
    assert batch_choices(spec) == [4, 8, 16]


def test_conditional_parameters_follow_their_condition() -> None:
    spec = load_study_spec("architecture")
    params = representative_params(spec.space)
    assert ("model.kwargs.attention_decoder" in params) == (params["model.name"] == "cbam_unet")


def test_a_searched_model_is_timed_choice_by_choice_not_by_its_middle() -> None:
    # The middle of [unet, cbam_unet] is cbam_unet: timed alone, every trial was forecast at the heavier
    # model's rate. Each choice is timed and the two averaged.
    assert cost_variants(load_study_spec("full")) == [{"model.name": "unet"}, {"model.name": "cbam_unet"}]
    assert cost_variants(load_study_spec("architecture"))[1] == {"model.name": "cbam_unet"}
    assert cost_variants(load_study_spec("lr_batch")) == [{}]  # the model is fixed: one measurement
    light, heavy = _cost(0.2, spread=0.1), _cost(0.4, spread=0.3)  # 40 and 20 img/s at batch 8
    mean = mean_cost([light, heavy], cost_variants(load_study_spec("full")))
    assert mean.s_per_step == pytest.approx(0.3) and mean.spread == pytest.approx(0.3)
    assert mean.s_per_epoch == pytest.approx((light.s_per_epoch + heavy.s_per_epoch) / 2)
    text = "\n".join(describe(StudyCost([mean], [27], None, 3600.0), scale="laptop", hint_flags=[]))
    assert "mean of unet 40.0 img/s, cbam_unet 20.0 img/s" in text and "±15%" in text
    assert mean_cost([light], [{}]) is light


def test_trial_lengths_come_from_the_space_or_the_fixed_part() -> None:
    sampled = load_study_spec("lr_batch").model_dump()
    sampled.update(resource=None, pruner={"name": "median"})
    sampled["space"]["train.epochs"] = {"type": "categorical", "choices": [25, 50, 100]}
    assert epoch_choices(parse_study(sampled, "t"), 25) == [25, 50, 100]
    assert epoch_choices(load_study_spec("full"), 80) == [80]


def test_epoch_cost_is_measured_at_both_ends_and_interpolated_between() -> None:
    small, large = _cost(0.1, batch=4), _cost(0.3, batch=16)  # 200 steps of 0.1 s, 50 steps of 0.3 s
    s = epoch_seconds([small, large], [4, 8, 16])
    assert s[0] == pytest.approx(200 * 0.1 + 4.0) and s[2] == pytest.approx(50 * 0.3 + 4.0)
    assert s[1] == pytest.approx(100 * (0.1 + (4 / 12) * 0.2) + 4.0)


def test_the_forecast_counts_what_successive_halving_lets_through() -> None:
    plan = ladder(27, ResourceSpec(min_epochs=3))
    pred = predict(
        pruner_factory=lambda: build_pruner("successive_halving", plan.pruner_kwargs("successive_halving")),
        s_per_epoch=[17.5], epochs=27, budget_s=3600, repeats=5,
    )  # fmt: skip
    # 205 epochs of budget: 27 per trial unpruned would be 7 trials; with rungs at 3 and 9, far more.
    assert 15 <= pred.configs <= 40 and 2 <= pred.top <= 8 and pred.pruned >= 10
    assert pred.configs_range[0] <= pred.configs <= pred.configs_range[1]


def _median_study(n_startup: int) -> StudyCost:
    spec = load_study_spec("loss")
    spec.pruner.kwargs["n_startup_trials"] = n_startup
    pred = predict(pruner_factory=lambda: study_pruner(spec), s_per_epoch=[60.0], epochs=25, budget_s=4500)
    wait = f"{n_startup} finished trials"
    return StudyCost([_cost(0.5)], [25], None, 4500.0, forecast=pred, pruner_wait=wait)


def test_a_pruner_that_cannot_act_before_the_deadline_is_named() -> None:
    hopeless = "\n".join(describe(_median_study(4), scale="laptop", hint_flags=[]))
    assert "warning: the pruner cannot act before the deadline (it waits for 4 finished trials)" in hopeless
    assert "3 configurations" in hopeless and "before --timeout 1h15m" in hopeless
    # The sentence ends: how many the pruner stops, and where (the line once stopped at "about N").
    assert "of them reaching 25 epochs; the pruner stops about 0 of them before the top" in hopeless
    # Nothing pruned: no caveat about a learning sampler sending more to the top.
    assert "as if at random" not in hopeless


def test_a_pruning_forecast_says_its_replay_picks_at_random() -> None:
    pred = predict(
        pruner_factory=lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=3, reduction_factor=3),
        s_per_epoch=[20.0],
        epochs=27,
        budget_s=3600,
    )
    assert pred.pruned >= 1  # the premise: the pruner acts in this budget
    text = "\n".join(
        describe(StudyCost([_cost(0.5)], [27], None, 3600.0, forecast=pred), scale="laptop", hint_flags=[])
    )
    assert "the replay picks as if at random; a sampler that learns" in text


def test_the_measurement_says_how_sure_it_is() -> None:
    firm = StudyCost([_cost(0.1, 4), _cost(0.3, 16)], [27], None, 3600.0)
    text = "\n".join(describe(firm, scale="laptop", hint_flags=[]))
    assert "5 timed windows" in text and "batch 4 and 16" in text and "±5%" in text
    assert "1 epoch at batch 4 ≈" in text and "1 epoch at batch 16 ≈" in text and "busy machine" not in text
    shaky = StudyCost([_cost(0.1, 4, spread=1.2)], [27], None, 3600.0)
    assert "busy machine" in "\n".join(describe(shaky, scale="laptop", hint_flags=[]))


def test_a_study_of_days_says_so_without_repeating_a_flag_the_user_gave() -> None:
    slow = StudyCost([_cost(20.0)], [25, 50, 100], n_trials=30, timeout_s=None)
    hints = fit_hints(device_type="cpu", scale="full", epochs_searched=True)
    text = "\n".join(describe(slow, scale="full", hint_flags=hints))
    assert "(days)" in text and "--scale laptop" in text and "a GPU" in text and "you decide" in text
    assert "--timeout SECONDS" in text
    given = fit_hints(device_type="cpu", scale="full", epochs_searched=False,
                      given=frozenset({"--timeout", "--scale", "--n-trials"}))  # fmt: skip
    assert not any(h.startswith(("--timeout", "--scale", "--n-trials")) for h in given)
    assert any(h.startswith("--max-epochs") for h in given)
    quick = StudyCost([_cost(0.05)], [25], n_trials=4, timeout_s=None)
    assert "days" not in "\n".join(describe(quick, scale="laptop", hint_flags=hints))


def test_workers_add_speed_on_a_cuda_device_only() -> None:
    """The forecast's budget is workers x --timeout on a GPU and --timeout on a CPU. A GPU's estimate names
    the card ("NVIDIA H200"), so the rule reads the device type: by the name, two workers on a GPU were
    forecast as one (7 configurations forecast, 12 evaluated, docs/results/full/study_lr_batch.log)."""
    from dataclasses import replace

    from hpsearch.search.cost import parallel_workers

    cpu = _cost(0.1)
    assert cpu.kind == "cpu" and parallel_workers([cpu], 4) == 1
    gpu = replace(cpu, device="NVIDIA H200", kind="cuda")
    assert parallel_workers([gpu], 2) == 2 and parallel_workers([gpu], 1) == 1
    assert parallel_workers([replace(cpu, device="Apple MPS", kind="mps")], 2) == 1
