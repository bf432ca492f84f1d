"""bf16 autocast and channels_last, run on the CPU, score like float32 on a fixed trained tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hpsearch.models import create_model
from hpsearch.training.config import DataConfig, RunConfig, TrainConfig
from hpsearch.training.loop import evaluate_loader, fit
from hpsearch.training.session import build_loaders, prepare_data

CPU = torch.device("cpu")
# bf16 keeps 8 significant bits, so pixels whose logit is within ~1% of 0 may flip; on a 64x64 tiny model
# that moves mean Dice by well under 0.01. 0.02 leaves room for that and still catches a broken bf16 path
# (a wrong cast or a lost channel order moves Dice by tenths).
DICE_TOLERANCE = 0.02


@pytest.fixture(scope="module")
def synth64(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """64 pairs: enough steps for a tiny model to learn in 3 epochs, so its logits are not all near 0."""
    from hpsearch.data.synth import make_synthetic

    return make_synthetic(tmp_path_factory.mktemp("s64") / "d", n=64, size=64, seed=0)


@pytest.mark.parametrize("name", ["unet", "cbam_unet"])
def test_bf16_autocast_and_channels_last_match_float32(synth64: Path, name: str) -> None:
    cfg = RunConfig(
        data=DataConfig(image_size=64, augmentation="none", val_fraction=0.25, test_fraction=0.15),
        model={"name": name, "kwargs": {"base_width": 8, "depth": 2}},
        train=TrainConfig(
            epochs=3, batch_size=4, lr=1e-2, loss="bce_dice", device="cpu", seed=0, compile="off"
        ),
    )
    data = prepare_data(cfg.data, synth64, progress=False)
    train, val = build_loaders(cfg, data, CPU)
    torch.manual_seed(0)
    model = create_model(name, **cfg.model.kwargs)
    model.load_state_dict(fit(model, train, val, config=cfg.train, progress=False).best_state)

    ref, _ = evaluate_loader(model, val, device=CPU, channels_last=False)
    seen: dict[str, object] = {}

    def spy(module: torch.nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        seen["in_channels_last"] = args[0].is_contiguous(memory_format=torch.channels_last)
        seen["dtype"] = out.dtype

    first_conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    hook = first_conv.register_forward_hook(spy)
    model = model.to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low, metrics = evaluate_loader(model, val, device=CPU, channels_last=True)
    hook.remove()

    # Both really ran: convolutions saw channels_last input and produced bf16.
    assert seen == {"in_channels_last": True, "dtype": torch.bfloat16}
    assert 0.3 < ref["dice"] < 1.0  # a trained model, not an all-background one
    assert low["dice"] == pytest.approx(ref["dice"], abs=DICE_TOLERANCE)
    assert low["iou"] == pytest.approx(ref["iou"], abs=DICE_TOLERANCE)
    assert metrics.per_image()[0].numel() == len(data.val_images)
