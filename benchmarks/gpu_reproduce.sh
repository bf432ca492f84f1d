#!/usr/bin/env bash
# Time-boxed reproduction of the report's table on one CUDA GPU (an estimated 10-12 minutes on an H100):
#   1. a time-boxed `lr_batch` study (pruned, no torch.compile),
#   2. `hpsearch export` of its best trial -> tuned_unet.yaml (the optimized column; CBAM is derived from it),
#   3. `hpsearch reproduce` with 1 seed on the official Kvasir-SEG split (test set sealed until the end).
#
# Usage (from the repository root, hpsearch installed):
#   HPSEARCH_DATA=/path/to/kvasir-seg bash benchmarks/gpu_reproduce.sh
# Everything small lands under $OUT (or ./gpu-results): results.md/json, worst.png, curves, the study
# database, the exported config, logs. Checkpoints and trial folders stay in $WORK (not copied back).
#
# Knobs (environment):
#   STUDY_TIMEOUT     seconds during which new lr_batch trials start (default 120)
#   STUDY_MAX_EPOCHS  epoch cap per trial (default 20) for studies with a fixed length; a study that
#                     searches train.epochs (lr_batch) refuses a cap and runs its own lengths
#   RUN_AUG=1         also run the augmentation study (same knobs); the better export wins
#   REPRO_EPOCHS      epoch cap per reproduce column (default 50; empty = the configs' own epochs)
#   SEEDS             seeds per column (default 1)
#   TUNED=candidate   skip the studies and use configs/tuned_unet.yaml (the reference recipe)
#   COMPILE           torch.compile for reproduce: off (default), auto or on
#   DEVICE            cuda (default); cpu only to smoke-test this script, e.g. with
#                     STUDY_SET="data.image_size=64 data.max_train_images=8 model.kwargs.base_width=8
#                     model.kwargs.depth=2" REPRO_ARGS="--quick" STUDY_TIMEOUT=1 STUDY_MAX_EPOCHS=1
#   STUDY_SET         extra `--set KEY=VALUE` overrides for the studies (space-separated)
#   REPRO_ARGS        extra arguments for `hpsearch reproduce` (space-separated)
set -euo pipefail

DATA="${HPSEARCH_DATA:?set HPSEARCH_DATA to the Kvasir-SEG folder (images/ and masks/)}"
RESULTS="${OUT:-./gpu-results}"
WORK="${WORK:-/tmp/hpsearch-gpu}"
STUDY_TIMEOUT="${STUDY_TIMEOUT:-120}"
STUDY_MAX_EPOCHS="${STUDY_MAX_EPOCHS:-20}"
REPRO_EPOCHS="${REPRO_EPOCHS-50}"
SEEDS="${SEEDS:-1}"
TUNED="${TUNED:-study}"
COMPILE="${COMPILE:-off}"
DEVICE="${DEVICE:-cuda}"
read -r -a STUDY_SET_ARGS <<< "${STUDY_SET:-}"
SET_ARGS=()
for kv in "${STUDY_SET_ARGS[@]}"; do SET_ARGS+=(--set "$kv"); done
read -r -a EXTRA_REPRO <<< "${REPRO_ARGS:-}"
export HPSEARCH_CACHE="${HPSEARCH_CACHE:-$WORK/cache}"
export HPSEARCH_DATA="$DATA"
mkdir -p "$RESULTS" "$WORK"
STORAGE="sqlite:///$RESULTS/studies.db"
T0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a "$RESULTS/timeline.txt"; }

DEVICE="$DEVICE" python - <<'PY'
import os, sys, torch
if os.environ["DEVICE"] == "cpu":
    print("DEVICE=cpu: smoke-testing the script, no real numbers")
elif not torch.cuda.is_available():
    sys.exit("no CUDA device: this script is for a GPU machine (use `hpsearch reproduce --quick` on a CPU)")
else:
    print("GPU:", torch.cuda.get_device_name(0), "| torch", torch.__version__)
PY
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
  hpsearch --help >/dev/null && python -c "import hpsearch; print('hpsearch', hpsearch.__version__)"
} > "$RESULTS/environment.txt" 2>&1

TUNED_ARGS=()
if [ "$TUNED" = "study" ]; then
  STUDIES=(lr_batch)
  if [ "${RUN_AUG:-0}" = "1" ]; then STUDIES+=(augmentation); fi
  for study in "${STUDIES[@]}"; do
    # A cap on a searched length would store epoch counts the trials never trained: hpsearch refuses it.
    EPOCH_CAP=()
    if python -c 'import sys; from hpsearch.search.spec import load_study_spec
sys.exit("train.epochs" in load_study_spec(sys.argv[1]).space)' "$study"; then
      EPOCH_CAP=(--max-epochs "$STUDY_MAX_EPOCHS")
    fi
    stamp "study $study: new trials for ${STUDY_TIMEOUT}s, epoch cap '${EPOCH_CAP[*]:-none}'"
    # A hard cap as well: --timeout only stops new trials; a running one finishes (or is cut here).
    timeout --signal=INT $((STUDY_TIMEOUT + 150)) \
      hpsearch run --study "$study" --data "$DATA" --storage "$STORAGE" --device "$DEVICE" \
        --timeout "$STUDY_TIMEOUT" "${EPOCH_CAP[@]}" \
        --out "$WORK/trials" --artifacts "$WORK/artifacts" \
        --set "train.compile='off'" --set train.gallery_k=0 "${SET_ARGS[@]}" \
        2>&1 | tee "$RESULTS/study_$study.log" || stamp "study $study stopped (exit $?)"
    hpsearch export --study "$study" --storage "$STORAGE" --out "$RESULTS/${study}_best.yaml" \
      2>&1 | tee -a "$RESULTS/study_$study.log" || stamp "no COMPLETE trial in $study"
    hpsearch report --study "$study" --storage "$STORAGE" --out "$RESULTS/report_$study" \
      >/dev/null 2>&1 || true
  done
  # The export with the highest validation Dice is the optimized column.
  BEST=$(python - "$RESULTS" "${STUDIES[@]}" <<'PY'
import sys, yaml, pathlib
root, studies = pathlib.Path(sys.argv[1]), sys.argv[2:]
found = []
for s in studies:
    p = root / f"{s}_best.yaml"
    if p.is_file():
        cfg = yaml.safe_load(p.read_text())
        if cfg["model"]["name"] == "unet":
            found.append((float(cfg["provenance"]["value"]), str(p)))
print(max(found)[1] if found else "")
PY
)
  if [ -n "$BEST" ]; then
    stamp "optimized column from $BEST"
    cp "$BEST" "$RESULTS/tuned_unet.yaml"
    TUNED_ARGS=(--tuned-config "$RESULTS/tuned_unet.yaml")
  else
    stamp "no study result: the optimized column falls back to the candidate configs/tuned_unet.yaml"
  fi
fi

EPOCH_ARGS=()
if [ -n "$REPRO_EPOCHS" ]; then EPOCH_ARGS=(--epochs "$REPRO_EPOCHS"); fi
stamp "reproduce: every column, $SEEDS seed(s), epochs cap '${REPRO_EPOCHS:-none}'"
hpsearch reproduce --data "$DATA" --out "$WORK/reproduce" --seeds "$SEEDS" --device "$DEVICE" \
  --compile "$COMPILE" "${EPOCH_ARGS[@]}" "${TUNED_ARGS[@]}" "${EXTRA_REPRO[@]}" 2>&1 | tee "$RESULTS/reproduce.log"

# Copy back everything but checkpoints (the wider/deeper one alone is about 1.1 GB).
stamp "copy results"
python - "$WORK/reproduce" "$RESULTS/reproduce" <<'PY'
import shutil, sys
shutil.copytree(sys.argv[1], sys.argv[2], ignore=shutil.ignore_patterns("best.pt"), dirs_exist_ok=True)
PY
stamp "done: $RESULTS/reproduce/results.md"
