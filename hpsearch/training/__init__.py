"""Training: run configs and their one resolver, losses, metrics, optimisers, ``fit`` (the only training loop;
never imports optuna), checkpoints, evaluation at the original mask resolution, and device choice.

The package re-exports nothing (importing it loads no module, so no torch): import each name from its
module.

- ``config.py``: ``RunConfig`` and its parts; ``load_config``, ``dump_config``, ``resolve_run_config``
- ``scale.py``: ``SCALES``, ``apply_scale``
- ``session.py``: ``prepare_data``, ``build_loaders``, ``train_from_config`` (run by ``train`` and trials)
- ``loop.py``: ``fit``, ``FitResult``, ``BestEpoch``, ``Callback``, ``evaluate_loader``; ``improves`` and
  ``best_epoch_row``, the one best-epoch rule
- ``metric_table.py``: ``METRICS``, each metric a run keeps its best epoch by
- ``record_keys.py``: the keys of ``FitResult.summary()``
- ``estimate.py``: ``measure_cost``, ``CostEstimate``
- ``losses.py``: ``LOSSES``, ``create_loss``
- ``metrics.py``: per-image Dice/IoU, micro Dice, ``SegMetrics``
- ``optim.py``: ``OPTIMIZERS``, ``SCHEDULERS``, ``create_optimizer``, ``create_schedule``
- ``checkpoint.py``: ``save_checkpoint``, ``load_checkpoint``, ``ResumePoint`` and the resume state
- ``outputs.py``: ``atomic_output``, ``check_writable``
- ``evaluate.py``: ``evaluate_checkpoint``, ``select_stems``
- ``device.py``: ``resolve_device``, ``autocast``
- ``manifest.py``: seeding and the provenance manifest
- ``progress.py``: a bar on a terminal, one line per epoch in a log
- ``validate.py``: registry names and model kwargs checked before storage is touched
- ``viz.py``: training curves, worst-case galleries
"""
