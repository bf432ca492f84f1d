"""Self-describing checkpoints: the weights plus what rebuilds the model (name, kwargs, resolved config).

``save_checkpoint`` writes atomically; ``load_checkpoint`` rebuilds the model from the file alone.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from hpsearch.errors import ConfigError
from hpsearch.models import create_model
from hpsearch.training.config import RunConfig

__all__ = ["CHECKPOINT_FORMAT", "load_checkpoint", "save_checkpoint"]

CHECKPOINT_FORMAT = "hpsearch-checkpoint/1"


def save_checkpoint(
    path: str | Path,
    *,
    state_dict: dict[str, torch.Tensor],
    epoch: int,
    metrics: dict[str, float],
    extra: dict[str, Any],
) -> Path:
    """Write a self-describing checkpoint: model name/kwargs, weights, resolved config, epoch, metrics."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        **copy.deepcopy(extra),
        "state_dict": state_dict,
        "epoch": epoch,
        "metrics": metrics,
    }
    tmp = p.with_suffix(p.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(p)  # atomic: a killed trial never leaves a half-written checkpoint
    return p


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
