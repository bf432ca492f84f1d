"""Training: run configs and their one resolver, losses, metrics, optimisers, ``fit`` (the only training loop;
never imports optuna), checkpoints, evaluation at the original mask resolution, and device choice."""

from __future__ import annotations

from hpsearch._lazy import lazy_exports

# Names load on first use, so importing the package (e.g. from the CLI) does not import torch. The loop is
# ``hpsearch.training.loop.fit`` (``hpsearch.fit`` at the package root).
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
    "BestEpoch": ".loop",
    "Callback": ".loop",
    "FitResult": ".loop",
    "evaluate_loader": ".loop",
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
    "DATA_ENV": ".runner",
    "PreparedData": ".runner",
    "TrainOutcome": ".runner",
    "build_loaders": ".runner",
    "prepare_data": ".runner",
    "resolve_data_dir": ".runner",
    "train_from_config": ".runner",
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
