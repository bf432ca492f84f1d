"""The one training loop: learning on synthetic data, callbacks, checkpoints, non-finite loss, schedules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hpsearch.errors import ConfigError, NonFiniteLossError
from hpsearch.models import create_model
from hpsearch.training.checkpoint import load_checkpoint
from hpsearch.training.config import WARMUP_SCHEDULES, DataConfig, RunConfig, TrainConfig, parse_run_config
from hpsearch.training.loop import fit
from hpsearch.training.optim import OPTIMIZERS, SCHEDULERS, create_optimizer, create_schedule
from hpsearch.training.session import build_loaders, prepare_data, train_from_config

TINY = {"base_width": 8, "depth": 2}


def tiny_cfg(**train: object) -> RunConfig:
    base = {"epochs": 3, "batch_size": 4, "lr": 3e-3, "loss": "bce_dice", "device": "cpu", "seed": 0}
    base.update(train)
    return RunConfig(
        data=DataConfig(image_size=64, augmentation="none", val_fraction=0.25, test_fraction=0.15),
        model={"name": "unet", "kwargs": TINY},
        train=TrainConfig(**base),
    )


@pytest.fixture(scope="module")
def synth64(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """64 pairs: enough optimizer steps per epoch for a tiny model to learn in 3 epochs."""
    from hpsearch.data.synth import make_synthetic

    return make_synthetic(tmp_path_factory.mktemp("s64") / "d", n=64, size=64, seed=0)


@pytest.mark.parametrize("model", ["unet", "cbam_unet"])
def test_tiny_models_learn_on_synthetic_data(synth64: Path, tmp_path: Path, model: str) -> None:
    cfg = tiny_cfg(epochs=3, lr=1e-2)
    cfg.model.name = model
    out = train_from_config(cfg, data_dir=synth64, out_dir=tmp_path / model, progress=False)
    dice = [h["val_dice"] for h in out.result.history]
    assert len(dice) == 3
    assert max(dice) > dice[0] + 0.05, dice  # it learns, clearly above its first epoch
    assert out.result.best_dice == max(dice)
    assert out.result.best_epoch == dice.index(max(dice)) + 1
    for name in ("best.pt", "metrics.json", "curves.png", "val_worst.png"):
        assert (tmp_path / model / name).stat().st_size > 0


def test_checkpoint_rebuilds_model_on_its_own(synth_data: Path, tmp_path: Path) -> None:
    cfg = tiny_cfg(epochs=1)
    out = train_from_config(cfg, data_dir=synth_data, out_dir=tmp_path, progress=False)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    # metrics.json names its files relative to the folder it sits in.
    summary = out.result.summary(base=tmp_path)
    assert summary["checkpoint"] == "best.pt"
    assert {k: metrics[k] for k in summary} == json.loads(json.dumps(summary))
    assert (tmp_path / metrics["config"]["data"]["path"]).resolve() == synth_data.resolve()
    model, cfg_back, ckpt = load_checkpoint(tmp_path / "best.pt")
    assert cfg_back.train == cfg.train and ckpt["model_name"] == "unet" and ckpt["epoch"] == 1
    assert ckpt["manifest"]["split_hash"] and ckpt["manifest"]["versions"]["torch"] == torch.__version__
    x = torch.randn(2, 3, 64, 64)
    ref = create_model("unet", **TINY)
    ref.load_state_dict(out.result.best_state)
    model.eval()
    ref.eval()
    assert torch.equal(model(x), ref(x))


def test_callbacks_see_every_epoch_and_can_stop(synth_data: Path) -> None:
    cfg = tiny_cfg(epochs=5)
    data = prepare_data(cfg.data, synth_data)
    train, val = build_loaders(cfg, data, torch.device("cpu"))
    seen: list[tuple[int, dict[str, float]]] = []

    class Stop(Exception):
        pass

    def cb(epoch: int, m: dict[str, float]) -> None:
        seen.append((epoch, m))
        if epoch == 2:
            raise Stop

    with pytest.raises(Stop):
        fit(create_model("unet", **TINY), train, val, config=cfg.train, callbacks=[cb], progress=False)
    assert [e for e, _ in seen] == [1, 2]
    # Each callback gets that epoch's full history row (what a pruning callback reports from).
    assert [m["epoch"] for _, m in seen] == [1.0, 2.0]
    assert {"train_loss", "val_loss", "val_dice", "val_iou", "lr"} <= set(seen[0][1])


def test_non_finite_loss_raises_typed_error(synth_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tiny_cfg(epochs=2)
    data = prepare_data(cfg.data, synth_data)
    train, val = build_loaders(cfg, data, torch.device("cpu"))

    class NanLoss(torch.nn.Module):
        def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return (logits * float("nan")).mean()

    monkeypatch.setattr("hpsearch.training.loop.create_loss", lambda name, **kw: NanLoss())
    with pytest.raises(NonFiniteLossError) as err:
        fit(create_model("unet", **TINY), train, val, config=cfg.train, progress=False)
    assert err.value.epoch == 1 and "non-finite" in str(err.value)


def test_same_seed_same_result(synth_data: Path, tmp_path: Path) -> None:
    cfg = tiny_cfg(epochs=2)
    a = train_from_config(cfg, data_dir=synth_data, out_dir=tmp_path / "a", progress=False).result
    b = train_from_config(cfg, data_dir=synth_data, out_dir=tmp_path / "b", progress=False).result
    assert [h["val_dice"] for h in a.history] == [h["val_dice"] for h in b.history]


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_every_optimizer_builds_and_steps(name: str) -> None:
    p = torch.nn.Parameter(torch.ones(3))
    opt = create_optimizer([p], TrainConfig(optimizer=name, lr=0.1, weight_decay=1e-4, nesterov=True))
    p.sum().backward()
    opt.step()
    assert not torch.equal(p.detach(), torch.ones(3))


def test_unknown_optimizer_lists_choices() -> None:
    with pytest.raises(ConfigError, match="adagrad, adam, adamw, rmsprop, sgd"):
        create_optimizer([torch.nn.Parameter(torch.ones(1))], TrainConfig(optimizer="lion"))


def test_cosine_warmup_schedule_values() -> None:
    p = torch.nn.Parameter(torch.ones(1))
    cfg = TrainConfig(lr=1.0, epochs=4, warmup_epochs=1, scheduler="cosine")
    opt = create_optimizer([p], cfg)
    sched = create_schedule(opt, cfg, steps_per_epoch=2)  # 8 steps, 2 of warm-up
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(8):
        sched.step_batch()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[0] == pytest.approx(1 / 3) and lrs[1] == pytest.approx(2 / 3)
    assert lrs[2] == pytest.approx(1.0)  # warm-up done: peak
    assert lrs[5] == pytest.approx(0.5)  # half-way through the cosine
    assert lrs[8] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in zip(lrs[2:], lrs[3:], strict=False))


def test_plateau_schedule_reduces_lr() -> None:
    p = torch.nn.Parameter(torch.ones(1))
    cfg = TrainConfig(lr=1.0, scheduler="plateau", plateau_patience=0, plateau_factor=0.5)
    opt = create_optimizer([p], cfg)
    sched = create_schedule(opt, cfg, steps_per_epoch=1)
    sched.step_epoch(0.5)
    sched.step_epoch(0.5)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5)


def test_uint8_batches_normalised_in_fit_train_like_float_batches(synth_data: Path) -> None:
    """The CUDA loader ships uint8 images and fit normalises them; the result must equal the float path."""
    from torch.utils.data import DataLoader

    from hpsearch.data.dataset import SegmentationArrays
    from hpsearch.training.loop import _to_device

    cfg = tiny_cfg(epochs=2)
    data = prepare_data(cfg.data, synth_data)
    histories = []
    for uint8 in (False, True):

        def loader(images, masks, shuffle: bool, uint8: bool = uint8) -> DataLoader:
            ds = SegmentationArrays(images, masks, uint8_images=uint8)
            gen = torch.Generator().manual_seed(0)
            return DataLoader(ds, batch_size=4, shuffle=shuffle, drop_last=shuffle, generator=gen)

        train = loader(data.train_images, data.train_masks, True)
        val = loader(data.val_images, data.val_masks, False)
        x, _ = next(iter(train))
        assert x.dtype == (torch.uint8 if uint8 else torch.float32)
        if uint8:
            xf, _ = next(iter(loader(data.train_images, data.train_masks, True, uint8=False)))
            moved, _ = _to_device((x, torch.zeros(1)), torch.device("cpu"), channels_last=False)
            torch.testing.assert_close(moved, xf, atol=1e-5, rtol=0)
            assert moved.is_contiguous()
        torch.manual_seed(0)
        res = fit(create_model("unet", **TINY), train, val, config=cfg.train, progress=False)
        histories.append([round(h["val_dice"], 4) for h in res.history])
    assert histories[0] == histories[1]


def test_uint8_images_refuse_custom_normalisation() -> None:
    import numpy as np

    from hpsearch.data.dataset import SegmentationArrays
    from hpsearch.errors import DataError

    imgs, masks = np.zeros((2, 8, 8, 3), np.uint8), np.zeros((2, 8, 8), np.uint8)
    with pytest.raises(DataError, match="MEAN/STD"):
        SegmentationArrays(imgs, masks, mean=(0.5, 0.5, 0.5), uint8_images=True)


@pytest.mark.parametrize("scheduler", ["none", "plateau"])
def test_a_warmup_the_schedule_ignores_is_a_config_error(scheduler: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_run_config(
            {"train": {"epochs": 5, "warmup_epochs": 2, "scheduler": scheduler}}, source="run.yaml"
        )
    msg = str(err.value)
    assert "run.yaml" in msg and "warmup_epochs=2" in msg and f"scheduler '{scheduler}'" in msg
    assert "set train.scheduler to cosine, or train.warmup_epochs to 0" in msg
    assert parse_run_config({"train": {"epochs": 5, "warmup_epochs": 2, "scheduler": "cosine"}})


def _lr_trace(name: str, warmup: int) -> list[float]:
    p = torch.nn.Parameter(torch.ones(1))
    # model_copy skips validation: this measures what each schedule does with a warm-up, allowed or not.
    cfg = TrainConfig(lr=1.0, epochs=4, scheduler=name).model_copy(update={"warmup_epochs": warmup})
    opt = create_optimizer([p], cfg)
    sched = create_schedule(opt, cfg, steps_per_epoch=2)
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(8):
        sched.step_batch()
        lrs.append(opt.param_groups[0]["lr"])
    sched.step_epoch(0.5)
    return lrs


@pytest.mark.parametrize("name", SCHEDULERS.names())
def test_warmup_schedules_list_matches_what_each_schedule_does(name: str) -> None:
    """WARMUP_SCHEDULES (used by validation) names exactly the schedules whose LR a warm-up changes."""
    uses_warmup = _lr_trace(name, 1) != _lr_trace(name, 0)
    assert uses_warmup == (name in WARMUP_SCHEDULES)


@pytest.mark.parametrize(
    ("device", "amp", "mps_amp", "mps_bf16", "dtype", "noted"),
    [
        ("cuda", True, False, False, torch.bfloat16, False),
        ("cuda", False, False, False, None, False),
        ("cpu", True, True, True, None, False),
        ("mps", True, False, True, None, False),  # MPS autocasts only when asked
        ("mps", True, True, True, torch.bfloat16, False),
        ("mps", True, True, False, None, True),  # no bf16 there: float32 and a note, never fp16
    ],
)
def test_autocast_dtype_never_picks_fp16(
    device: str, amp: bool, mps_amp: bool, mps_bf16: bool, dtype: torch.dtype | None, noted: bool
) -> None:
    from hpsearch.training.device import autocast_dtype

    got, note = autocast_dtype(device, amp=amp, mps_amp=mps_amp, mps_bf16=mps_bf16)
    assert got == dtype and (note is not None) == noted
    if note:
        assert "mps_amp" in note and "float32" in note and "\n" not in note
