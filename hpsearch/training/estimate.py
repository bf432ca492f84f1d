"""What a run will cost, measured before it starts: a few real training steps and a slice of validation.

The steps go through ``fit`` itself (same loaders, augmentation, loss, precision and device), so the rate
is the rate the run will have, not a model-only micro-benchmark.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from hpsearch.training.config import RunConfig
from hpsearch.training.runner import PreparedData, build_loaders

# A first step pays for allocations and kernel selection; three more give a stable per-step time on a CPU.
_TIMED_STEPS = 4
_VAL_SLICE = 2  # validation batches timed, then scaled to the whole validation set


@dataclass(frozen=True)
class CostEstimate:
    """Measured seconds per training step and per validation pass, and what they add up to."""

    device: str
    batch_size: int
    image_size: int
    n_train: int
    n_val: int
    s_per_step: float
    val_s: float

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps in one epoch (a ragged last batch is dropped, as in training)."""
        return max(1, self.n_train // self.batch_size)

    @property
    def s_per_epoch(self) -> float:
        """Training plus one validation pass."""
        return self.s_per_step * self.steps_per_epoch + self.val_s

    @property
    def train_img_per_s(self) -> float:
        """Training images per second at the measured step time."""
        return self.batch_size / self.s_per_step if self.s_per_step > 0 else math.inf

    def run_s(self, epochs: int) -> float:
        """Seconds for a run of ``epochs`` epochs, unpruned."""
        return self.s_per_epoch * epochs


def _slice_val(data: PreparedData, n: int) -> PreparedData:
    return dataclasses.replace(
        data, val_images=data.val_images[:n], val_masks=data.val_masks[:n], val_stems=data.val_stems[:n]
    )


def measure_cost(cfg: RunConfig, data: PreparedData, *, steps: int = _TIMED_STEPS) -> CostEstimate:
    """Time ``steps`` real training steps of ``cfg`` (the first discarded) and a slice of validation."""
    from hpsearch.models import create_model
    from hpsearch.training.device import describe_device, resolve_device
    from hpsearch.training.fit import fit

    device = resolve_device(cfg.train.device)
    bs = cfg.train.batch_size
    n_val = len(data.val_images)
    val_n = min(n_val, _VAL_SLICE * max(bs, 32))
    # Two one-epoch fits: a short one for warm-up and a longer one, whose difference is pure step time.
    train = cfg.train.model_copy(update={"epochs": 1, "compile": "off", "gallery_k": 0, "warmup_epochs": 0})
    possible = max(1, len(data.train_images) // bs)  # fit drops a ragged last batch
    counts = (1, min(1 + steps, possible))
    times = []
    for n_steps in counts:
        model = create_model(cfg.model.name, **cfg.model.kwargs)
        loaders = build_loaders(cfg, _slice_val(data, val_n), device)
        run = train.model_copy(update={"max_steps_per_epoch": n_steps})
        res = fit(model, *loaders, config=run, progress=False)
        times.append((res.history[0]["train_time_s"], res.history[0]["val_time_s"]))
    if counts[1] > counts[0]:
        s_per_step = (times[1][0] - times[0][0]) / (counts[1] - counts[0])
    else:  # a single batch of data: the warm-up step is the only measure there is
        s_per_step = times[1][0]
    s_per_step = max(1e-9, s_per_step)
    val_s = times[1][1] * (n_val / val_n) if val_n else 0.0
    return CostEstimate(
        device=describe_device(device),
        batch_size=bs,
        image_size=cfg.data.image_size,
        n_train=len(data.train_images),
        n_val=n_val,
        s_per_step=s_per_step,
        val_s=val_s,
    )
