"""Cross-checks of names against the registries, done before anything is written to storage."""

from __future__ import annotations

from hpsearch.errors import ConfigError
from hpsearch.training.config import RunConfig


def check_registry_names(cfg: RunConfig, *, source: str) -> None:
    """Model, loss, optimizer, schedule and augmentation names must be registered."""
    from hpsearch.data.augment import PRESETS
    from hpsearch.models import MODELS
    from hpsearch.training.losses import LOSSES
    from hpsearch.training.optim import OPTIMIZERS, SCHEDULERS

    checks = (
        ("model.name", cfg.model.name, MODELS),
        ("train.loss", cfg.train.loss, LOSSES),
        ("train.optimizer", cfg.train.optimizer, OPTIMIZERS),
        ("train.scheduler", cfg.train.scheduler, SCHEDULERS),
        ("data.augmentation", cfg.data.augmentation, PRESETS),
    )
    for field, value, registry in checks:
        try:
            registry.get(value)
        except ConfigError as exc:
            raise ConfigError(f"{source}: field '{field}': {exc}") from None
    check_model_kwargs(cfg, source=source)


def check_model_kwargs(cfg: RunConfig, *, source: str) -> None:
    """Build the model on the 'meta' device (no memory, no compute) to validate its kwargs early."""
    import torch

    from hpsearch.models import create_model

    try:
        with torch.device("meta"):
            create_model(cfg.model.name, **cfg.model.kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{source}: field 'model.kwargs': {exc}") from None
