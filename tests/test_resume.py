"""A run killed half-way continues after its last saved epoch, in ``fit`` and in ``hpsearch reproduce``."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import torch

import hpsearch.training.loop as loop_module
import hpsearch.training.session as runner_module
from hpsearch.models import create_model
from hpsearch.training.checkpoint import ResumePoint, load_resume_state, save_resume_state
from hpsearch.training.config import DataConfig, RunConfig, TrainConfig
from hpsearch.training.loop import FitResult, fit
from hpsearch.training.progress import EpochBar
from hpsearch.training.session import build_loaders, prepare_data

TINY = {"base_width": 4, "depth": 2}


class Killed(Exception):
    """Stands for the end of a session: the process stops after an epoch."""


@pytest.fixture(scope="module")
def setup(synth_data: Path) -> tuple[RunConfig, Any]:
    # Cosine with warm-up: the schedule has state of its own, which a resume must carry over.
    train = TrainConfig(
        epochs=4, batch_size=4, lr=3e-3, scheduler="cosine", warmup_epochs=1, device="cpu", compile="off"
    )
    cfg = RunConfig(
        data=DataConfig(image_size=32, augmentation="none", val_fraction=0.25, test_fraction=0.15),
        model={"name": "unet", "kwargs": TINY},
        train=train,
    )
    return cfg, prepare_data(cfg.data, synth_data, progress=False)


def _fit(cfg: RunConfig, data: Any, *, init_seed: int = 0, **kw: Any) -> FitResult:
    """A fresh process's view: new model, new loaders (their generators seeded from the config)."""
    torch.manual_seed(init_seed)
    model = create_model("unet", **TINY)
    train, val = build_loaders(cfg, data, torch.device("cpu"))
    return fit(model, train, val, config=cfg.train, progress=False, **kw)


def _kill_after(epoch: int):
    def cb(e: int, row: dict[str, float]) -> None:
        if e == epoch:
            raise Killed

    return cb


@pytest.mark.parametrize(
    ("augmentation", "augment_on"), [("none", "auto"), ("basic", "cpu"), ("basic", "device")]
)
def test_a_killed_run_resumes_after_its_last_saved_epoch_and_ends_as_an_unbroken_one(
    setup: tuple[RunConfig, Any], tmp_path: Path, augmentation: str, augment_on: str
) -> None:
    cfg, data = setup
    # 'basic' on the CPU path augments in this process with albumentations' own RNGs, on the device path with
    # the batches' generator: either stream must continue too.
    update = {"augmentation": augmentation, "augment_on": augment_on}
    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update=update)})
    unbroken = _fit(cfg, data)
    point = ResumePoint(tmp_path / "resume.pt", {"run": "a"}, every_s=0.0)
    with pytest.raises(Killed):
        _fit(cfg, data, resume=point, callbacks=[_kill_after(2)])
    state, why_not = load_resume_state(point)
    assert why_not is None and state is not None and state["epoch"] == 2
    # Another initialisation proves the weights come from the saved state, not from the seed.
    resumed = _fit(cfg, data, resume=point, init_seed=123)
    assert resumed.resumed_from_epoch == 2 and resumed.epochs_run == 4
    keys = ("train_loss", "val_dice", "val_iou", "lr")
    assert [[r[k] for k in keys] for r in resumed.history] == [[r[k] for k in keys] for r in unbroken.history]
    assert (resumed.best_epoch, resumed.best_dice) == (unbroken.best_epoch, unbroken.best_dice)
    assert all(torch.equal(resumed.best_state[k], unbroken.best_state[k]) for k in unbroken.best_state)
    assert resumed.summary()["resumed_from_epoch"] == 2
    assert not point.path.exists()  # finished: nothing left to resume


def test_without_a_resume_point_nothing_is_saved_and_a_finished_run_leaves_no_state(
    setup: tuple[RunConfig, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, data = setup
    saved: list[int] = []
    monkeypatch.setattr(loop_module, "save_resume_state", lambda point, state: saved.append(state["epoch"]))
    _fit(cfg, data)
    assert saved == []
    _fit(cfg, data, resume=ResumePoint(tmp_path / "r.pt", {"run": "a"}, every_s=0.0))
    assert saved == [1, 2, 3]  # never after the last epoch: the run is finished then
    _fit(cfg, data, resume=ResumePoint(tmp_path / "r.pt", {"run": "a"}, every_s=3600.0))
    assert saved == [1, 2, 3]  # throttled: at most one save per every_s


def test_state_of_another_run_or_a_damaged_file_starts_over_and_says_why(
    setup: tuple[RunConfig, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, data = setup
    point = ResumePoint(tmp_path / "resume.pt", {"run": "a"}, every_s=0.0)
    with pytest.raises(Killed):
        _fit(cfg, data, resume=point, callbacks=[_kill_after(1)])
    other = ResumePoint(point.path, {"run": "b"}, every_s=0.0)
    assert load_resume_state(other)[0] is None
    loaders = build_loaders(cfg, data, torch.device("cpu"))
    result = fit(create_model("unet", **TINY), *loaders, config=cfg.train, resume=other)
    assert result.resumed_from_epoch == 0 and result.epochs_run == 4
    assert "belongs to another config or dataset; starting at epoch 1" in capsys.readouterr().err
    point.path.write_bytes(b"not a torch file")
    state, why_not = load_resume_state(point)
    assert state is None and "cannot be read" in why_not
    save_resume_state(point, {"epoch": 1})
    state, _ = load_resume_state(point)
    assert state is not None and state["key"] == {"run": "a"}


def test_the_progress_of_a_resumed_run_paces_only_this_sittings_epochs() -> None:
    t = [0.0]
    lines: list[str] = []
    bar = EpochBar(None, 10, 5, "r", log=lines.append, clock=lambda: t[0], start_epoch=6)
    for _ in range(5):
        t[0] += 2.0
        bar.advance_step()
    assert bar.seconds_left() == pytest.approx(2.0 * 5 * 4 - 10.0)  # 4 epochs of 5 steps left, 5 done
    t[0] = 10.0
    bar.end_epoch(7, train_loss=0.1, val_dice=0.5, best_dice=0.5)
    assert "epoch 7/10" in lines[-1] and bar.seconds_left() == pytest.approx(30.0)  # 3 more at 10 s each


def test_reproduce_continues_a_killed_run_from_its_saved_epoch(
    tmp_path: Path, synth_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hpsearch.reproduce import ReproduceOptions, reproduce

    monkeypatch.setattr(runner_module, "ResumePoint", functools.partial(ResumePoint, every_s=0.0))
    real_save = loop_module.save_resume_state

    def save_then_die(point: ResumePoint, state: dict[str, Any]) -> Path:
        path = real_save(point, state)
        if state["epoch"] == 2:
            raise Killed
        return path

    options = ReproduceOptions(
        data=synth_data, out=tmp_path, columns=["unet"], quick=True, device="cpu", epochs=3
    )
    with monkeypatch.context() as mp:
        mp.setattr(loop_module, "save_resume_state", save_then_die)
        with pytest.raises(Killed):
            reproduce(options, log=lambda m: None)
    run_dir = tmp_path / "unet" / "seed0"
    assert (run_dir / "resume.pt").is_file() and not (run_dir / "run.json").exists()
    out = reproduce(options, log=lambda m: None)
    record = out.columns["unet"].runs[0]
    assert record.resumed_from_epoch == 2 and record.epochs_run == 3
    assert not (run_dir / "resume.pt").exists()


def test_train_command_continues_a_killed_run_and_no_resume_starts_over(
    tmp_path: Path, synth_data: Path, monkeypatch: pytest.MonkeyPatch, invoke: Any
) -> None:
    import json

    import yaml

    monkeypatch.setattr(runner_module, "ResumePoint", functools.partial(ResumePoint, every_s=0.0))
    real_save = loop_module.save_resume_state
    cfg = tmp_path / "run.yaml"
    data = {"image_size": 32, "augmentation": "none", "val_fraction": 0.25, "test_fraction": 0.15}
    train = {"epochs": 3, "batch_size": 4, "device": "cpu"}
    cfg.write_text(yaml.safe_dump({"data": data, "model": {"name": "unet", "kwargs": TINY}, "train": train}))
    args = ("train", "--config", cfg, "--data", synth_data, "--out", tmp_path / "out")

    def save_then_die(point: ResumePoint, state: dict[str, Any]) -> Path:
        real_save(point, state)
        raise Killed

    with monkeypatch.context() as mp:
        mp.setattr(loop_module, "save_resume_state", save_then_die)
        assert isinstance(invoke(*args).exception, Killed)
    state = tmp_path / "out" / "resume.pt"
    assert state.is_file()
    res = invoke(*args)
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["resumed_from_epoch"] == 1
    assert not state.exists()

    with monkeypatch.context() as mp:
        mp.setattr(loop_module, "save_resume_state", save_then_die)
        invoke(*args)
    assert state.is_file()
    res = invoke(*args, "--no-resume")
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["resumed_from_epoch"] == 0
    assert not state.exists()  # --no-resume removed the old state (fit alone never touches it then)
