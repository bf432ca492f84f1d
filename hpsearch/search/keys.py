"""Every attribute key hpsearch stores on an Optuna study or trial, named once.

Workers write them, and ``results``/``reproduce`` and the dashboard read them back; a bare string in two
places would drift. Values are the strings already in existing storages, so old studies still read.
"""

from __future__ import annotations

# The finished fit's record (FitResult.summary()), stored on every complete trial: named in the training room,
# which cannot import this module, and re-used here.
from hpsearch.training.record_keys import (
    BEST_EPOCH,
    BEST_VAL_DICE,
    BEST_VAL_IOU,
    BEST_VALUE,
    CHECKPOINT,
    DEVICE,
    EPOCHS_RUN,
    HISTORY,
    MONITOR,
    PEAK_MEMORY_MB,
    RESUMED_FROM_EPOCH,
    TRAIN_IMG_PER_S,
    WALL_TIME_S,
)

__all__ = [  # the re-used names; every other name below is this module's own
    "BEST_EPOCH", "BEST_VAL_DICE", "BEST_VAL_IOU", "BEST_VALUE", "CHECKPOINT", "DEVICE", "EPOCHS_RUN",
    "HISTORY", "MONITOR", "PEAK_MEMORY_MB", "RESUMED_FROM_EPOCH", "TRAIN_IMG_PER_S", "WALL_TIME_S",
]  # fmt: skip

# ---- study user attributes
SPEC = "hpsearch_spec"  # the StudySpec as JSON: any worker rebuilds sampler, pruner and space from it
SPEC_FINGERPRINT = "spec_fingerprint"  # hash of space/fixed/metric/direction/sampler/pruner: resume check
DATA_SPLIT_HASH = "data_split_hash"  # hash of the train/val/test stems: resume and worker check
BUDGET_N_TRIALS = "budget_n_trials"  # the study's total trial budget (tickets issued so far)
VERSION = "hpsearch_version"  # package version that created the study
SCALE = "hpsearch_scale"  # the named scale every trial trains at (hpsearch.training.scale); fixed per study
LENGTH_PLAN = "hpsearch_length_plan"  # top length, rungs and final length of a resource study (search.plan)

# ---- trial user attributes
TICKET = "hpsearch_ticket"  # this trial was enqueued as one unit of the budget
WORKER = "worker"
CONFIG = "config"  # the fully resolved RunConfig the trial trained with (what export writes)
SEED = "seed"
TRIAL_WALL_S = "trial_wall_s"  # the whole objective call
OVERHEAD_S = "overhead_s"  # trial_wall_s - wall_time_s: storage writes, gallery, curves, artifacts
RECORD_S = "record_s"
HARDWARE = "hardware"  # set as a trial starts (the manifest's "hardware"): a stopped trial names it too
MANIFEST = "manifest"
OUT_DIR = "out_dir"
ARTIFACTS = "artifacts"  # {"gallery": artifact id, "curves": artifact id}
FAIL_REASON = "fail_reason"
FAIL_DETAIL = "fail_detail"
PRUNE_REASON = "prune_reason"
STOPPED_BY = "stopped_by"  # "budget": stopped by --timeout, not by the pruner (still exportable)
NOTE_ERROR = "note_error"  # why the dashboard note could not be written (the trial itself is fine)

# ---- trial system attribute set by Optuna's retry callback (and by hpsearch for interrupted tickets)
FAILED_TRIAL = "failed_trial"
