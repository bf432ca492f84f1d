#!/usr/bin/env bash
# Everything a GPU machine is needed for, in one time-boxed command (sized for about 9 minutes on one H100/H200):
#   1. bench    benchmarks/gpu.py: U-Net and CBAM U-Net training img/s (bf16, channels_last; eager and
#               compiled; batch 16/32/8), peak memory, the input pipeline against preloaded batches, and one
#               real trial's validation share and study overhead. Alone on the GPU, so its timings are clean.
#   2. study    a real `lr_batch` study at the full scale with a wall-time budget (STUDY_TIMEOUT), while the
#               baseline columns of the table (unet, unet_cbam, wide_deep) train beside it on the same GPU;
#   3. export   the study's best trial -> tuned_unet.yaml, and `hpsearch report` of the study;
#   4. tuned    `hpsearch reproduce --tuned-config` trains the tuned U-Net and tuned CBAM U-Net, each in
#               its own process beside the baseline columns; once all are done, the whole table on the
#               sealed 120 (finished columns are kept, not trained again).
#   5. pack     everything small (no checkpoints) into the results folder and a tarball in 15 MiB parts
#               (PACK_TO, default the results folder): `cat results.tgz.part* | tar xz` unpacks it.
#
# Usage (from the repository root, hpsearch importable):
#   HPSEARCH_DATA=/path/to/kvasir-seg bash benchmarks/gpu_reproduce.sh
#   HPSEARCH_DATA=benchmarks/gpu-cache bash benchmarks/gpu_reproduce.sh   # make_cache.py's 256² copy
# On a machine without network, WHEELS=dir installs the missing packages (and hpsearch) from wheels first.
#
# Knobs (environment):
#   PHASES            which phases run, in order (default "bench study export tuned pack")
#   RESULTS_DIR       where results go (default $OUT, else ./gpu-results); PACK_TO, where the tarball goes
#   BENCH_ARGS        extra arguments for gpu.py (default "--budget-s 150")
#   STUDY_TIMEOUT     seconds during which new lr_batch trials start (default 120)
#   STUDY_WORKERS     worker processes of the study on the one GPU (default 2)
#   STUDY_HARD_S      extra seconds after STUDY_TIMEOUT before a running study is interrupted (default 60)
#   REPRO_EPOCHS      epoch cap per reproduce column (default 60; empty = the configs' own epochs)
#   SEEDS             seeds per column (default 1)
#   COMPILE           torch.compile for reproduce: off (default), auto or on
#   DEVICE            cuda (default); cpu only to check this script, with the tiny overrides:
#                     DEVICE=cpu STUDY_SET="data.image_size=64 data.max_train_images=16 model.kwargs.base_width=4
#                     model.kwargs.depth=2" REPRO_ARGS="--quick" BENCH_ARGS="--smoke --no-compile" ...
#   STUDY_SET         extra `--set KEY=VALUE` overrides for the study (space-separated)
#   STUDY_ARGS        extra arguments for `hpsearch run` (space-separated)
#   REPRO_ARGS        extra arguments for `hpsearch reproduce` (space-separated)
set -euo pipefail

DATA="${HPSEARCH_DATA:?set HPSEARCH_DATA to the Kvasir-SEG folder (images/ and masks/)}"
RESULTS="${RESULTS_DIR:-${OUT:-./gpu-results}}"
PACK_TO="${PACK_TO:-$RESULTS}"
WORK="${WORK:-/tmp/hpsearch-gpu}"
PHASES="${PHASES:-bench study export tuned pack}"
STUDY_TIMEOUT="${STUDY_TIMEOUT:-120}"
STUDY_WORKERS="${STUDY_WORKERS:-2}"
STUDY_HARD_S="${STUDY_HARD_S:-60}"
REPRO_EPOCHS="${REPRO_EPOCHS-60}"
SEEDS="${SEEDS:-1}"
COMPILE="${COMPILE:-off}"
DEVICE="${DEVICE:-cuda}"
read -r -a BENCH_EXTRA <<< "${BENCH_ARGS:---budget-s 150}"
read -r -a STUDY_SET_ARGS <<< "${STUDY_SET:-}"
SET_ARGS=()
for kv in "${STUDY_SET_ARGS[@]}"; do SET_ARGS+=(--set "$kv"); done
read -r -a STUDY_EXTRA <<< "${STUDY_ARGS:-}"
read -r -a REPRO_EXTRA <<< "${REPRO_ARGS:-}"
mkdir -p "$RESULTS" "$WORK/bin"
RESULTS="$(cd "$RESULTS" && pwd)"
DATA="$(cd "$DATA" && pwd)"
export HPSEARCH_CACHE="${HPSEARCH_CACHE:-$WORK/cache}"
export HPSEARCH_DATA="$DATA" PYTHONUNBUFFERED=1
STORAGE="sqlite:///$RESULTS/studies.db"
T0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a "$RESULTS/timeline.txt"; }
has() { [[ " $PHASES " == *" $1 "* ]]; }

# ---------------------------------------------------------------------------------------------- install
if [ -n "${WHEELS:-}" ] && [ ! -d "$WORK/site" ]; then
  # An offline machine: the wheels given, into one folder put first on the path (hpsearch runs from here).
  python3 -m pip install -q --no-index --no-deps --no-compile --target "$WORK/site" "$WHEELS"/*.whl
fi
if [ -d "$WORK/site" ]; then export PYTHONPATH="$WORK/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"; fi
if ! command -v hpsearch >/dev/null; then
  # Not installed: run the checkout's package (workers are started as `python -m hpsearch` too).
  printf '#!/bin/sh\nexec python3 -m hpsearch "$@"\n' > "$WORK/bin/hpsearch"
  chmod +x "$WORK/bin/hpsearch"
  export PATH="$WORK/bin:$PATH" PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi

DEVICE="$DEVICE" python3 - <<'PY'
import os, sys, torch
if os.environ["DEVICE"] == "cpu":
    print("DEVICE=cpu: checking the script, no real numbers")
elif not torch.cuda.is_available():
    sys.exit("no CUDA device: this script is for a GPU machine (DEVICE=cpu only checks the script)")
else:
    print("GPU:", torch.cuda.get_device_name(0), "| torch", torch.__version__)
PY
[ -s "$RESULTS/environment.txt" ] || { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
  python3 -c "import hpsearch, optuna, albumentations; print('hpsearch', hpsearch.__version__, \
'| optuna', optuna.__version__, '| albumentations', albumentations.__version__)"
  hpsearch --help >/dev/null && echo "hpsearch CLI ok"
  echo "command: PHASES='$PHASES' STUDY_TIMEOUT=$STUDY_TIMEOUT STUDY_WORKERS=$STUDY_WORKERS" \
       "REPRO_EPOCHS=$REPRO_EPOCHS SEEDS=$SEEDS COMPILE=$COMPILE BENCH_ARGS='${BENCH_EXTRA[*]}'" \
       "bash benchmarks/gpu_reproduce.sh"
} > "$RESULTS/environment.txt" 2>&1
cat "$RESULTS/environment.txt"

EPOCH_ARGS=()
if [ -n "$REPRO_EPOCHS" ]; then EPOCH_ARGS=(--epochs "$REPRO_EPOCHS"); fi
# Every reproduce call shares these, so a column trained by an earlier call is kept by the later ones.
REPRO=(hpsearch reproduce --data "$DATA" --out "$WORK/reproduce" --seeds "$SEEDS" --device "$DEVICE"
       --compile "$COMPILE" "${EPOCH_ARGS[@]}" "${REPRO_EXTRA[@]}")

# ------------------------------------------------------------------------------------------------ bench
if has bench; then
  stamp "bench: benchmarks/gpu.py ${BENCH_EXTRA[*]}"
  python3 benchmarks/gpu.py --data "$DATA" --out "$RESULTS/bench" --device "$DEVICE" "${BENCH_EXTRA[@]}" \
    > "$RESULTS/bench.log" 2>&1 || stamp "bench failed (exit $?): see bench.log"
  grep -E "^\[" "$RESULTS/bench.log" | tail -40 || true
fi

# ------------------------------------------------------------------------------------------------ study
if has study; then
  stamp "baseline columns (unet, unet_cbam, wide_deep) start beside the study"
  "${REPRO[@]}" --columns unet,unet_cbam,wide_deep > "$RESULTS/reproduce_baseline.log" 2>&1 &
  BASELINE_PID=$!
  stamp "study lr_batch: new trials for ${STUDY_TIMEOUT}s, $STUDY_WORKERS workers"
  # --timeout stops new trials and a running one at its next epoch; the hard cap is a last resort.
  timeout --signal=INT $((STUDY_TIMEOUT + STUDY_HARD_S)) \
    hpsearch run --study lr_batch --data "$DATA" --storage "$STORAGE" --device "$DEVICE" \
      --timeout "$STUDY_TIMEOUT" --workers "$STUDY_WORKERS" \
      --out "$WORK/trials" --artifacts "$WORK/artifacts" \
      --set "train.compile='off'" "${SET_ARGS[@]}" "${STUDY_EXTRA[@]}" \
      > "$RESULTS/study_lr_batch.log" 2>&1 || stamp "study stopped (exit $?)"
  tail -25 "$RESULTS/study_lr_batch.log"
fi

# ----------------------------------------------------------------------------------------------- export
TUNED_ARGS=()
if has export; then
  if hpsearch export --study lr_batch --storage "$STORAGE" --out "$RESULTS/tuned_unet.yaml" \
       > "$RESULTS/export.log" 2>&1; then
    TUNED_ARGS=(--tuned-config "$RESULTS/tuned_unet.yaml")
    stamp "exported the best lr_batch trial -> tuned_unet.yaml"
  else
    stamp "export failed (see export.log): the tuned columns use the candidate configs/tuned_unet.yaml"
  fi
  cat "$RESULTS/export.log"
  hpsearch report --study lr_batch --storage "$STORAGE" --out "$RESULTS/report_lr_batch" \
    > "$RESULTS/report.log" 2>&1 || stamp "report failed (see report.log)"
fi

# ------------------------------------------------------------------------------------------------ tuned
if has tuned; then
  # Each column in its own process as soon as its config exists: the GPU is shared, not taken in turns.
  stamp "tuned columns beside the baseline ones: tuned, tuned_cbam"
  "${REPRO[@]}" "${TUNED_ARGS[@]}" --columns tuned > "$RESULTS/reproduce_tuned.log" 2>&1 &
  P1=$!
  "${REPRO[@]}" "${TUNED_ARGS[@]}" --columns tuned_cbam > "$RESULTS/reproduce_tuned_cbam.log" 2>&1 &
  P2=$!
  wait "$P1" || stamp "tuned failed (exit $?)"
  wait "$P2" || stamp "tuned_cbam failed (exit $?)"
fi
if [ -n "${BASELINE_PID:-}" ]; then
  wait "$BASELINE_PID" || stamp "baseline columns failed (exit $?): see reproduce_baseline.log"
fi
if has tuned; then
  stamp "the whole table (every finished column kept)"
  "${REPRO[@]}" "${TUNED_ARGS[@]}" > "$RESULTS/reproduce.log" 2>&1 || stamp "table failed (exit $?)"
  tail -30 "$RESULTS/reproduce.log"
fi

# ------------------------------------------------------------------------------------------------- pack
if has pack; then
  stamp "pack: results without checkpoints"
  if [ -d "$WORK/reproduce" ]; then
    python3 - "$WORK/reproduce" "$RESULTS/reproduce" <<'PY'
import shutil, sys
shutil.copytree(sys.argv[1], sys.argv[2], ignore=shutil.ignore_patterns("*.pt", "*.pt.tmp", "resume*"),
                dirs_exist_ok=True)
PY
  fi
  stamp "done"
  # In parts of at most 15 MiB, for transfers that limit a file's size: `cat results.tgz.part* | tar xz`.
  mkdir -p "$PACK_TO"
  tar -czf - -C "$RESULTS" --exclude "results.tgz.part*" . | split -b 15m -d - "$PACK_TO/results.tgz.part"
fi
