"""What a run will cost, measured before it starts: a few real training steps and a slice of validation.

The steps go through ``fit`` itself (same loaders, augmentation, loss, precision and device), so the rate
is the rate the run will have, not a model-only micro-benchmark.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass

from hpsearch.training.config import RunConfig
from hpsearch.training.session import PreparedData, build_loaders

# A first epoch pays for allocations and kernel selection and is discarded; then several timed windows of a
# few steps each, whose median is the step time: one busy stretch of the machine moves one window, not the
# median (four steps of one window could be fooled by an order of magnitude).
_WINDOWS = 5
_VAL_SLICE = 1  # validation batches timed per window, then scaled to the whole validation set
DEFAULT_MAX_S = 20.0  # about this many seconds of timed steps per measured configuration


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
    spread: float = 0.0  # (slowest - fastest window) / median step time: how sure the step time is
    windows: int = 1
    max_steps: int | None = None  # the config's max_steps_per_epoch, if it caps an epoch
    kind: str = "cpu"  # torch's device type ("cuda", "mps", "cpu"); ``device`` is the name shown to people
    mean_of: str | None = None  # set when the figures average several configurations: what they were

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps in one epoch (a ragged last batch is dropped, as in training)."""
        steps = max(1, self.n_train // self.batch_size)
        return min(steps, self.max_steps) if self.max_steps else steps

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


def _timed_fit(cfg: RunConfig, data: PreparedData, *, epochs: int, steps: int) -> list[dict[str, float]]:
    """``epochs`` one-window epochs of ``steps`` real training steps each through ``fit``; their history."""
    from hpsearch.models import create_model
    from hpsearch.training.device import resolve_device
    from hpsearch.training.loop import fit

    device = resolve_device(cfg.train.device)
    train = cfg.train.model_copy(
        update={
            "epochs": epochs,
            "compile": "off",
            "gallery_k": 0,
            "warmup_epochs": 0,
            "max_steps_per_epoch": steps,
        }
    )
    model = create_model(cfg.model.name, **cfg.model.kwargs)
    loaders = build_loaders(cfg, data, device)
    return fit(model, *loaders, config=train, progress=False).history


def measure_cost(cfg: RunConfig, data: PreparedData, *, max_s: float = DEFAULT_MAX_S) -> CostEstimate:
    """Time ``cfg``'s training steps robustly: a warm-up epoch, then ``_WINDOWS`` timed windows of as many
    steps as fit in about ``max_s`` seconds; the step time is the windows' median (see ``spread``)."""
    from hpsearch.training.device import describe_device, resolve_device

    bs = cfg.train.batch_size
    n_val = len(data.val_images)
    val_n = min(n_val, _VAL_SLICE * max(bs, 32))
    sliced = _slice_val(data, val_n)
    possible = max(1, len(data.train_images) // bs)  # fit drops a ragged last batch
    probe = _timed_fit(cfg, sliced, epochs=1, steps=min(2, possible))[0]
    rough = max(1e-6, probe["train_time_s"] / min(2, possible))  # warm-up included: an overestimate
    steps = max(1, min(possible, int(max_s / (_WINDOWS * rough))))
    history = _timed_fit(cfg, sliced, epochs=1 + _WINDOWS, steps=steps)[1:]
    per_step = [h["train_time_s"] / steps for h in history]
    s_per_step = max(1e-9, statistics.median(per_step))
    val_s = statistics.median(h["val_time_s"] for h in history) * (n_val / val_n) if val_n else 0.0
    return CostEstimate(
        device=describe_device(resolve_device(cfg.train.device)),
        kind=resolve_device(cfg.train.device).type,
        batch_size=bs,
        image_size=cfg.data.image_size,
        n_train=len(data.train_images),
        n_val=n_val,
        s_per_step=s_per_step,
        val_s=val_s,
        spread=(max(per_step) - min(per_step)) / s_per_step,
        windows=len(per_step),
        max_steps=cfg.train.max_steps_per_epoch,
    )
