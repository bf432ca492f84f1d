"""Self-describing checkpoints: the weights plus what rebuilds the model (name, kwargs, resolved config).

``save_checkpoint`` writes atomically; ``load_checkpoint`` rebuilds the model from the file alone. A
``ResumePoint`` names where ``fit`` keeps its state between epochs, so that a run killed half-way (a
session's end, a pre-empted node) continues from its last saved epoch instead of from the start.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hpsearch.errors import ConfigError
from hpsearch.models import create_model
from hpsearch.training.config import RunConfig
from hpsearch.training.outputs import atomic_output

__all__ = [
    "CHECKPOINT_FORMAT",
    "RESUME_FORMAT",
    "ResumePoint",
    "checkpoint_bytes",
    "load_checkpoint",
    "load_resume_state",
    "save_checkpoint",
    "save_resume_state",
    "weights_bytes",
]

CHECKPOINT_FORMAT = "hpsearch-checkpoint/1"
RESUME_FORMAT = "hpsearch-resume/1"


@dataclass(frozen=True)
class ResumePoint:
    """Where ``fit`` saves its state between epochs, and which run that state belongs to.

    ``key`` identifies the run (config, data, split): state saved under another key is not resumed. The state
    is written at most every ``every_s`` seconds (at the full scale it is hundreds of MB: model, optimizer
    and best weights), so a killed run repeats at most that much training.
    """

    path: Path
    key: dict[str, Any]
    every_s: float = 60.0


def _atomic_save(payload: dict[str, Any], p: Path) -> Path:
    # A killed run or a full disk never leaves a half-written file (nor a temporary one filling the disk).
    with atomic_output(p, what="checkpoint") as tmp:
        torch.save(payload, tmp)
    return p


def weights_bytes(model: torch.nn.Module) -> int:
    """The bytes of ``model``'s weights as a checkpoint stores them (most of its size)."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def checkpoint_bytes(config: RunConfig) -> int:
    """About how many bytes ``save_checkpoint`` writes for ``config``'s model."""
    return weights_bytes(create_model(config.model.name, **config.model.kwargs))


def save_resume_state(point: ResumePoint, state: dict[str, Any]) -> Path:
    """Write ``fit``'s state after an epoch (atomically), tagged with the run's key."""
    return _atomic_save({"format": RESUME_FORMAT, "key": point.key, **state}, Path(point.path))


def load_resume_state(point: ResumePoint) -> tuple[dict[str, Any] | None, str | None]:
    """The saved state to continue from, or None; the second value says why a file there is not used."""
    p = Path(point.path)
    if not p.is_file():
        return None, None
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # a file from another version, or damaged: start over rather than fail
        return None, f"{p} cannot be read ({type(exc).__name__}); starting at epoch 1"
    if not isinstance(state, dict) or state.get("format") != RESUME_FORMAT:
        return None, f"{p} is not an hpsearch resume state; starting at epoch 1"
    if state.get("key") != point.key:
        return None, f"{p} belongs to another config or dataset; starting at epoch 1"
    return state, None


def save_checkpoint(
    path: str | Path,
    *,
    state_dict: dict[str, torch.Tensor],
    epoch: int,
    metrics: dict[str, float],
    extra: dict[str, Any],
) -> Path:
    """Write a self-describing checkpoint: model name/kwargs, weights, resolved config, epoch, metrics."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        **copy.deepcopy(extra),
        "state_dict": state_dict,
        "epoch": epoch,
        "metrics": metrics,
    }
    return _atomic_save(payload, Path(path))


def load_checkpoint(path: str | Path) -> tuple[torch.nn.Module, RunConfig, dict[str, Any]]:
    """Rebuild the model from a self-describing checkpoint; returns (model, config, raw checkpoint)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"checkpoint '{p}' does not exist; pass the best.pt written by `hpsearch train`")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(
            f"checkpoint '{p}' cannot be read ({type(exc).__name__}); is it an hpsearch checkpoint?"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(
            f"checkpoint '{p}' is not an hpsearch checkpoint (expected format {CHECKPOINT_FORMAT})"
        )
    model = create_model(ckpt["model_name"], **ckpt["model_kwargs"])
    model.load_state_dict(ckpt["state_dict"])
    return model, RunConfig.model_validate(ckpt["config"]), ckpt
