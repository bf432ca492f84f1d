"""The laptop scale, the one config resolver's scale and cap layers, the cost estimate and per-epoch lines."""

from __future__ import annotations

import pytest

from hpsearch.errors import ConfigError
from hpsearch.training.config import load_config, resolve_run_config
from hpsearch.training.progress import EpochBar, epoch_progress, format_duration
from hpsearch.training.scale import SCALES, apply_scale

REPORT = {
    "data": {"image_size": 256},
    "model": {"name": "unet", "kwargs": {"base_width": 64, "depth": 4}},
    "train": {"lr": 1e-3, "batch_size": 8, "optimizer": "adam", "epochs": 25},
}


def test_laptop_shrinks_images_and_widths_but_not_the_recipe() -> None:
    cfg = resolve_run_config(REPORT, scale="laptop")
    laptop = SCALES.get("laptop")
    assert cfg.scale == "laptop"
    assert cfg.data.image_size == laptop.max_image_size < 256
    assert cfg.model.kwargs["base_width"] == 64 // laptop.width_divisor == 16
    assert cfg.model.kwargs["depth"] == 4
    recipe = (cfg.train.lr, cfg.train.batch_size, cfg.train.optimizer, cfg.train.epochs)
    assert recipe == (1e-3, 8, "adam", 25)


def test_every_width_is_divided_by_the_same_factor() -> None:
    wide = load_config("configs/report_wide_deep.yaml").model_dump(mode="json")
    base = load_config("configs/report_baseline.yaml").model_dump(mode="json")
    w, b = (resolve_run_config(c, scale="laptop").model.kwargs["base_width"] for c in (wide, base))
    assert w / b == wide["model"]["kwargs"]["base_width"] / base["model"]["kwargs"]["base_width"]


def test_a_model_without_a_width_gets_the_default_divided() -> None:
    cfg = resolve_run_config({"model": {"name": "cbam_unet"}}, scale="laptop")
    assert cfg.model.kwargs["base_width"] == 16


def test_scaling_is_applied_once_and_never_undone() -> None:
    once = resolve_run_config(REPORT, scale="laptop")
    again = resolve_run_config(once, scale="laptop")
    kept = resolve_run_config(once)  # no --scale: the config's own scale
    assert again == once and kept == once
    with pytest.raises(ConfigError, match="made at scale 'laptop' and cannot be rescaled to 'full'"):
        resolve_run_config(once, scale="full")


def test_an_unknown_scale_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="unknown scale 'tiny'; expected one of: full, laptop"):
        resolve_run_config(REPORT, scale="tiny")
    with pytest.raises(ConfigError, match="scale"):
        resolve_run_config({**REPORT, "scale": "tiny"})


def test_full_scale_changes_nothing() -> None:
    assert apply_scale(dict(REPORT), "full") == REPORT
    assert resolve_run_config(REPORT, scale="full") == resolve_run_config(REPORT)


def test_the_cap_refuses_a_sampled_warmup_too() -> None:
    with pytest.raises(ConfigError, match="--max-epochs 3 would cap the training length"):
        resolve_run_config(
            {"train": {"scheduler": "cosine"}}, params={"train.warmup_epochs": 2}, max_epochs=3
        )


def test_format_duration() -> None:
    assert [format_duration(s) for s in (5, 65, 3 * 3600 + 120, 2 * 86400 + 4 * 3600)] == [
        "5s", "1m05s", "3h02m", "2d04h"
    ]
    assert format_duration(None) == "?"


class _Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_epoch_lines_give_the_pace_and_the_time_left() -> None:
    clock, lines = _Clock(), []
    bar = EpochBar(None, 4, 10, "trial 3", log=lines.append, clock=clock)
    for _ in range(5):  # half an epoch at 2 s a step: 40 steps in the run, 35 left at 2 s
        clock.t += 2.0
        bar.advance_step(images=8)
    assert bar.seconds_left() == pytest.approx(70.0)
    clock.t += 15.0  # the epoch took 25 s with validation
    line = bar.end_epoch(1, train_loss=0.5, val_dice=0.61, best_dice=0.61, img_per_s=4.0)
    assert lines == [line]
    assert line.startswith("trial 3 epoch 1/4 | train loss 0.5000 | val Dice 0.6100 (best 0.6100)")
    assert "4.0 img/s" in line and "elapsed 25s" in line and "left ~1m15s" in line
    for epoch in (2, 3, 4):
        clock.t += 25.0
        line = bar.end_epoch(epoch, train_loss=0.4, val_dice=0.62, best_dice=0.62, img_per_s=4.0)
    assert line.endswith("elapsed 1m40s | left ~0s") and bar.seconds_left() == 0.0


def test_without_a_terminal_fit_progress_writes_one_line_per_epoch(capsys: pytest.CaptureFixture) -> None:
    with epoch_progress(2, 3, "train", None) as bar:  # pytest's captured stderr is not a terminal
        bar.end_epoch(1, train_loss=0.4, val_dice=0.5, best_dice=0.5)
        bar.end_epoch(2, train_loss=0.3, val_dice=0.6, best_dice=0.6)
    err = capsys.readouterr().err.splitlines()
    assert [e.split(" |")[0] for e in err] == ["train epoch 1/2", "train epoch 2/2"]
    with epoch_progress(2, 3, "train", False) as bar:
        bar.end_epoch(1, train_loss=0.4, val_dice=0.5, best_dice=0.5)
    assert capsys.readouterr().err == ""


def test_the_cost_estimate_adds_up(synth_data) -> None:
    from hpsearch.training.estimate import measure_cost
    from hpsearch.training.session import prepare_data

    def cfg(width: int):
        return resolve_run_config(
            {
                "data": {"image_size": 64, "augmentation": "none", "val_fraction": 0.2, "test_fraction": 0.1},
                "model": {"name": "unet", "kwargs": {"base_width": width, "depth": 2}},
                "train": {"batch_size": 4, "device": "cpu", "amp": False},
            },
            data_path=synth_data,
        )

    data = prepare_data(cfg(4).data, synth_data, progress=False)
    small = measure_cost(cfg(4), data, max_s=2.0)
    assert small.n_train == len(data.train_images) and small.n_val == len(data.val_images)
    assert small.steps_per_epoch == len(data.train_images) // 4
    assert small.s_per_epoch == pytest.approx(small.s_per_step * small.steps_per_epoch + small.val_s)
    assert small.run_s(10) == pytest.approx(10 * small.s_per_epoch)
    assert small.s_per_step > 0 and small.val_s > 0 and small.device.startswith("CPU")
    # Several timed windows, their median the step time: one slow window cannot set it alone.
    assert small.windows == 5 and small.spread >= 0
    # How close the estimate comes is a timing question for a real run, not for a unit test on a shared
    # machine: docs/results/laptop/README.md sets the printed estimate against the study's wall time.


def test_a_listener_hears_batch_progress_about_once_a_second() -> None:
    clock, heard = _Clock(), []
    bar = EpochBar(None, 2, 10, "trial 0", clock=clock, listener=heard.append, every_s=1.0)
    for _ in range(6):  # 0.4 s a step: heard at steps 1, 4 (1.2 s after the first), not in between
        clock.t += 0.4
        bar.advance_step(images=8)
    assert [h["step"] for h in heard] == [1, 4]
    assert heard[-1]["steps"] == 10 and heard[-1]["img_per_s"] == pytest.approx(20.0)
    assert heard[-1]["left_s"] == pytest.approx(0.4 * 16)  # 20 steps in the run, 4 done


def test_the_live_table_shows_the_batch_rate_and_time_left() -> None:
    from hpsearch.search.live import Board

    board = Board("study t")
    board.on_event({"kind": "start", "trial": 2, "params": {"train.lr": 0.001}, "epochs": 25, "worker": "0"})
    board.on_event({"kind": "step", "trial": 2, "step": 40, "steps": 99, "img_per_s": 51.2, "left_s": 400.0,
                    "worker": "0"})
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(board.table())
    text = console.export_text()
    assert "40/99" in text and "51.2" in text and "~6m40s" in text


def test_a_pruned_trial_line_keeps_its_whole_reason() -> None:
    from rich.console import Console

    from hpsearch.search.live import Board

    console = Console(width=200, record=True)
    board = Board("study t", console=console)
    board.on_event({"kind": "end", "trial": 2, "state": "PRUNED", "worker": "0",
                    "reason": "stopped after epoch 1: the study's time budget ran out [sic]"})
    assert console.export_text().strip() == (
        "trial 2 PRUNED (stopped after epoch 1: the study's time budget ran out [sic])"
    )
