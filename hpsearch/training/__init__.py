"""Training: run configs and their one resolver, losses, metrics, optimisers, ``fit`` (the only training loop;
never imports optuna), checkpoints, evaluation at the original mask resolution, and device choice."""

from __future__ import annotations

from hpsearch._lazy import lazy_exports

# Names load on first use, so importing the package (e.g. from the CLI) does not import torch. The loop is
# ``hpsearch.training.fit.fit``: a package attribute ``fit`` would clash with the submodule of that name.
_EXPORTS = {
    "DataConfig": ".config",
    "ModelConfig": ".config",
    "RunConfig": ".config",
    "TrainConfig": ".config",
    "dump_config": ".config",
    "load_config": ".config",
    "parse_run_config": ".config",
    "resolve_run_config": ".config",
    "SCALES": ".scale",
    "apply_scale": ".scale",
    "CostEstimate": ".estimate",
    "measure_cost": ".estimate",
    "BestEpoch": ".fit",
    "Callback": ".fit",
    "FitResult": ".fit",
    "evaluate_loader": ".fit",
    "CHECKPOINT_FORMAT": ".checkpoint",
    "load_checkpoint": ".checkpoint",
    "save_checkpoint": ".checkpoint",
    "ResumePoint": ".checkpoint",
    "load_resume_state": ".checkpoint",
    "save_resume_state": ".checkpoint",
    "atomic_output": ".outputs",
    "check_writable": ".outputs",
    "CaseResult": ".evaluate",
    "evaluate_checkpoint": ".evaluate",
    "select_stems": ".evaluate",
    "DATA_ENV": ".session",
    "PreparedData": ".session",
    "TrainOutcome": ".session",
    "build_loaders": ".session",
    "prepare_data": ".session",
    "resolve_data_dir": ".session",
    "train_from_config": ".session",
    "LOSSES": ".losses",
    "create_loss": ".losses",
    "loss_names": ".losses",
    "SegMetrics": ".metrics",
    "dice_iou_per_image": ".metrics",
    "micro_dice": ".metrics",
    "resize_logits_to": ".metrics",
    "OPTIMIZERS": ".optim",
    "SCHEDULERS": ".optim",
    "create_optimizer": ".optim",
    "create_schedule": ".optim",
    "autocast": ".device",
    "autocast_dtype": ".device",
    "resolve_device": ".device",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
