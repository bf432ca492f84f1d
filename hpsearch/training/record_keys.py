"""The keys of a finished fit's record (``FitResult.summary()``), named once.

A trial stores this record as its user attributes, ``metrics.json`` and ``reproduce`` write it to files, and
``hpsearch.search.keys`` (the home of every attribute key on a study or trial) re-uses these names rather
than spelling them again. Values are the strings already in existing storages and files.
"""

from __future__ import annotations

MONITOR = "monitor"  # the metric that picked the best epoch (a study's metric)
BEST_VALUE = "best_value"  # that metric at the best epoch: a trial's value
BEST_EPOCH = "best_epoch"
BEST_VAL_DICE = "best_val_dice"
BEST_VAL_IOU = "best_val_iou"
EPOCHS_RUN = "epochs_run"
WALL_TIME_S = "wall_time_s"  # inside fit()
TRAIN_IMG_PER_S = "train_img_per_s"
DEVICE = "device"
PEAK_MEMORY_MB = "peak_memory_mb"
HISTORY = "history"  # per-epoch metrics
CHECKPOINT = "checkpoint"
RESUMED_FROM_EPOCH = "resumed_from_epoch"  # 0 unless the fit continued a saved run
